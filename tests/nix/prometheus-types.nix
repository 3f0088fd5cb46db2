# services.prometheus.scrapeConfigs as nixpkgs types it (nixos/modules/services/monitoring/prometheus/
# default.nix, promTypes.scrape_config and the types it uses; docs/nix.md names the copy read):
# a submodule, so a key nixpkgs does not declare fails the evaluation, and options left unset are
# null and dropped from prometheus.yml (filterValidPrometheus). Only the options the project sets,
# or may set, are declared here: a new one fails until it is added, after checking nixpkgs.
{ lib }:

let
  inherit (lib) mkOption types;
  opt = type: mkOption { type = types.nullOr type; default = null; };
  submodule = options: types.submodule { inherit options; };

  tls_config = submodule {
    ca_file = opt types.str;
    cert_file = opt types.str;
    key_file = opt types.str;
    server_name = opt types.str;
    insecure_skip_verify = opt types.bool;
  };
  authorization = submodule {
    credentials = opt types.str;
    credentials_file = opt types.str;
    type = opt types.str;
  };
  relabel_config = submodule {
    action = opt (types.enum [ "replace" "lowercase" "uppercase" "keep" "drop" "hashmod" "labelmap" "labeldrop" "labelkeep" ]);
    modulus = opt types.int;
    regex = opt types.str;
    replacement = opt types.str;
    separator = opt types.str;
    source_labels = opt (types.listOf types.str);
    target_label = opt types.str;
  };
  static_config = submodule {
    targets = mkOption { type = types.listOf types.str; };
    labels = mkOption { type = types.attrsOf types.str; default = { }; };
  };
  kubernetes_sd_config = submodule {
    api_server = opt types.str;
    kubeconfig_file = opt types.str;
    role = mkOption { type = types.enum [ "endpoints" "service" "pod" "node" "ingress" ]; };
    namespaces = opt (submodule { names = opt (types.listOf types.str); });
    authorization = opt authorization;
    tls_config = opt tls_config;
    follow_redirects = opt types.bool;
    proxy_url = opt types.str;
  };
  scrape_config = submodule {
    job_name = mkOption { type = types.str; };
    metrics_path = opt types.str;
    scheme = opt (types.enum [ "http" "https" ]);
    scrape_interval = opt types.str;
    scrape_timeout = opt types.str;
    honor_labels = opt types.bool;
    static_configs = opt (types.listOf static_config);
    kubernetes_sd_configs = opt (types.listOf kubernetes_sd_config);
    relabel_configs = opt (types.listOf relabel_config);
    metric_relabel_configs = opt (types.listOf relabel_config);
    authorization = opt types.attrs;
    tls_config = opt tls_config;
  };

  # nixpkgs' filterValidPrometheus: what reaches prometheus.yml.
  withoutNulls = x:
    if lib.isAttrs x then lib.mapAttrs (_: withoutNulls) (lib.filterAttrs (n: v: n != "_module" && v != null) x)
    else if lib.isList x then map withoutNulls x
    else x;
in
{
  scrapeConfigs = mkOption { type = types.listOf scrape_config; default = [ ]; };
  checkConfig = mkOption { type = types.either types.bool (types.enum [ "syntax-only" ]); default = true; };
  inherit withoutNulls;
}
