# Evaluates the project's NixOS modules with nixpkgs' lib (the module system, its types and merge
# rules) against declarations of the nixpkgs options they set, with the types those options have
# in nixpkgs (see docs/nix.md, "Options verified"). Package-valued settings get placeholder store
# paths: nothing is built. Run by tests/nix/test_nix.py:
#   nix-instantiate --eval --strict --json --argstr nixpkgsLib /path/to/nixpkgs-lib tests/nix/eval-modules.nix
{ nixpkgsLib }:

let
  lib = import (/. + nixpkgsLib + "/lib");
  inherit (lib) mkOption types;

  storePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  systemdServices = import ./systemd-services.nix { inherit lib storePath; };
  prometheusTypes = import ./prometheus-types.nix { inherit lib; };
  fakeDrv = name: { type = "derivation"; outPath = storePath name; inherit name; };
  pkgs = {
    writeText = name: _: storePath name;
    runCommand = name: _: _: storePath name;
  } // lib.genAttrs [ "curl" "jq" "yq-go" "kubernetes-helm" "cargo-audit" "trivy" "git" "nix" "coreutils" ] fakeDrv;


  any = mkOption { type = types.anything; default = null; };
  bool = default: mkOption { type = types.bool; inherit default; };
  attrsAny = mkOption { type = types.attrsOf types.anything; default = { }; };

  # The nixpkgs options the modules set, with nixpkgs' types where they constrain our values.
  nixpkgsOptions = {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      networking.firewall = {
        enable = bool true;
        allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
        trustedInterfaces = mkOption { type = types.listOf types.str; default = [ ]; };
        allowPing = bool true;
        logRefusedConnections = bool true;
      };
      networking.hosts = mkOption { type = types.attrsOf (types.listOf types.str); default = { }; };
      systemd.services = mkOption { type = systemdServices.type; default = { }; };
      systemd.timers = mkOption { type = systemdServices.timersType; default = { }; };
      services.postgresql = {
        enable = bool false;
        ensureDatabases = mkOption { type = types.listOf types.str; default = [ ]; };
        ensureUsers = mkOption {
          type = types.listOf (types.submodule {
            options = {
              name = mkOption { type = types.str; };
              ensureDBOwnership = bool false;
            };
          });
          default = [ ];
        };
      };
      virtualisation = {
        memorySize = mkOption { type = types.ints.positive; default = 1024; };
        diskSize = mkOption { type = types.either (types.enum [ "auto" ]) types.ints.positive; default = 1024; };
        cores = mkOption { type = types.ints.positive; default = 1; };
      };
      services.k3s = {
        enable = bool false;
        role = mkOption { type = types.enum [ "server" "agent" ]; default = "server"; };
        package = mkOption { type = types.package; default = fakeDrv "k3s" // { airgap-images = fakeDrv "k3s-airgap-images"; }; };
        extraFlags = mkOption { type = types.either types.str (types.listOf types.str); default = [ ]; };
        images = mkOption { type = types.listOf types.package; default = [ ]; };
        manifests = mkOption {
          type = types.attrsOf (types.submodule {
            options.content = mkOption { type = types.nullOr (types.either types.attrs (types.listOf types.attrs)); default = null; };
          });
          default = { };
        };
        autoDeployCharts = mkOption {
          type = types.attrsOf (types.submodule {
            options = {
              package = mkOption { type = types.either types.path types.package; };
              targetNamespace = mkOption { type = types.nonEmptyStr; default = "default"; };
              createNamespace = bool false;
              values = mkOption { type = types.either types.path types.attrs; default = { }; };
            };
          });
          default = { };
        };
      };
      services.dockerRegistry = {
        enable = bool false;
        listenAddress = mkOption { type = types.str; default = "127.0.0.1"; };
        port = mkOption { type = types.port; default = 5000; };
        enableGarbageCollect = bool false;
      };
      environment.etc = mkOption { type = types.attrsOf (types.submodule { options.text = mkOption { type = types.nullOr types.lines; default = null; }; }); default = { }; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      users.users = mkOption {
        type = types.attrsOf (types.submodule {
          options = {
            isNormalUser = bool false;
            extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
            openssh.authorizedKeys.keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
          };
        });
        default = { };
      };
      users.mutableUsers = bool true;
      services.prometheus = {
        enable = bool false;
        listenAddress = mkOption { type = types.str; default = "0.0.0.0"; };
        port = mkOption { type = types.port; default = 9090; };
        globalConfig = attrsAny;
        ruleFiles = mkOption { type = types.listOf types.path; default = [ ]; };
        inherit (prometheusTypes) scrapeConfigs checkConfig;
        alertmanagers = mkOption { type = types.listOf types.attrs; default = [ ]; };
        alertmanager = {
          enable = bool false;
          listenAddress = mkOption { type = types.str; default = ""; };
          port = mkOption { type = types.port; default = 9093; };
          configText = mkOption { type = types.nullOr types.lines; default = null; };
        };
      };
      services.loki = {
        enable = bool false;
        configFile = mkOption { type = types.nullOr types.path; default = null; };
      };
      services.alloy = {
        enable = bool false;
        configPath = mkOption { type = types.path; default = "/etc/alloy"; };
      };
      services.grafana = {
        enable = bool false;
        settings = attrsAny;
        provision = {
          enable = bool false;
          datasources.path = mkOption { type = types.nullOr types.path; default = null; };
          dashboards.path = mkOption { type = types.nullOr types.path; default = null; };
        };
      };
      services.openssh = {
        enable = bool false;
        openFirewall = bool true;
        settings = attrsAny;
      };
      security.sudo.wheelNeedsPassword = bool true;
      nix.settings = attrsAny;
      boot.kernel.sysctl = mkOption { type = types.attrsOf types.anything; default = { }; };
      nixpkgs = any;
    };
  };

  eval = modules: (lib.evalModules {
    modules = [ nixpkgsOptions { _module.args.pkgs = pkgs; } ] ++ modules;
  }).config;

  failedAssertions = config: map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);

  service = settings: eval [
    ../../nixos-modules/devsecops-app.nix
    { services.devsecops-app = { enable = true; package = fakeDrv "devsecops-app"; } // settings; }
  ];

  safe = service { apiTokenFile = "/run/secrets/devsecops-api-token"; };
  backupSettings = { schedule = "*-*-* 03:17:00"; keep = 5; };
  backedUp = service { apiTokenFile = "/run/secrets/devsecops-api-token"; backup = backupSettings // { enable = true; }; };
  backupOnPostgres = service {
    apiTokenFile = "/run/secrets/t";
    databaseUrl = "postgres:///devsecops-app?host=/run/postgresql";
    backup.enable = true;
  };
  # Literal percent signs everywhere a user's value reaches the unit: a percent-encoded URL (%2F is
  # no systemd specifier, %C and %A are), an IPv6 zone, a file name.
  percentSettings = {
    apiTokenFile = "/run/secrets/token-100%d";
    databaseUrl = "postgres:///caf%C3%A9?host=%2Frun%2Fpostgresql&user=devsecops-app";
    host = "fe80::1%eth0";
    metrics.host = "fe80::3%eth1";
    trustedProxies = [ "fe80::2%eth0" "10.0.0.0/8" ];
    extraEnvironment.CONFIG_FILE = "/etc/devsecops/50%.toml";
  };
  percent = service percentSettings;
  # The database URL from a file: its credential path is the user's too.
  percentFileSettings = {
    apiTokenFile = "/run/secrets/token-100%d";
    databaseUrlFile = "/run/secrets/database-url-100%d";
  };
  percentFile = service percentFileSettings;
  secured = settings: failedAssertions (service ({ apiTokenFile = "/run/secrets/t"; } // settings));
  # Database URLs with a password in the user info or the query (as sqlx-postgres reads it), and
  # without one.
  databaseUrls = {
    withPassword = [
      "postgres://app:hunter2@db/app"
      "postgres://app@db/app?password=hunter2"
      "postgres:///app?host=/run/postgresql&user=app&password=hunter2"
      "postgres:///app?pass%77ord=hunter2"
      "postgresql:///app?PASSWORD=hunter2#fragment"
      # The url crate splits the user info at the authority's last `@`: user `app@host`.
      "postgres://app@host:hunter2@db/app"
      "postgres://:hunter2@db/app"
    ];
    withoutPassword = [
      "postgres:///app?host=%2Frun%2Fpostgresql&user=app"
      "postgres://app@db:5432/app?sslmode=verify-full&passwordless=1"
      "postgres:///app#password=not-a-query"
      "sqlite:///var/lib/devsecops-app/app.db"
      "postgres://app@[::1]:5432/app"
      "postgres://app@db/app?application_name=a@b:c"
    ];
  };
  # Listener layouts on one port: (host, metrics.host), judged by the module and, in
  # tests/nix/test_listen_addresses.py, by binding both on this machine.
  listenerLayouts = [
    [ "127.0.0.1" "127.0.0.1" ]
    [ "0.0.0.0" "127.0.0.1" ]
    [ "127.0.0.1" "0.0.0.0" ]
    [ "::" "127.0.0.1" ]
    [ "127.0.0.1" "::" ]
    [ "::" "::1" ]
    [ "::1" "0:0:0:0:0:0:0:1" ]
    [ "::ffff:7f00:1" "127.0.0.1" ]
    [ "::ffff:127.0.0.1" "127.0.0.1" ]
    [ "127.0.0.1" "::ffff:127.0.0.1" ]
    [ "::ffff:127.0.0.2" "127.0.0.1" ]
    [ "::ffff:7f00:2" "0.0.0.0" ]
    [ "localhost" "127.0.0.1" ]
    [ "127.0.0.1" "127.0.0.2" ]
    [ "::1" "127.0.0.1" ]
    [ "0.0.0.0" "::1" ]
  ];
  unsafe = service {
    databaseUrl = "postgres://app:hunter2@db/app";
    extraEnvironment = { API_TOKEN = "in-the-store"; "BAD NAME" = "x"; TRUST_FORWARDED_FOR = "true"; };
    metrics.port = 8080;
  };
  port80 = service { apiTokenFile = "/run/secrets/t"; port = 80; };
  metricsPort443 = service { apiTokenFile = "/run/secrets/t"; metrics.port = 443; };
  proxied = service { apiTokenFile = "/run/secrets/t"; trustedProxies = [ "10.42.0.0/16" "127.0.0.1" ]; metrics.host = "0.0.0.0"; openapiPublic = false; };

  # The VM tests' machines, evaluated like the modules.
  vmTestArgs = import ./vm-tests.nix { extraPkgs = pkgs; };
  serviceTest = vmTestArgs.service;
  applianceTest = vmTestArgs.appliance;
  node = module: eval [ module ];

  appliance = eval [
    ../../nixos-modules/appliance
    {
      devsecops.appliance = {
        enable = true;
        apiTokenFile = "/run/secrets/api-token-100%";
        app = { metricsPort = 9465; trustedProxies = [ "10.42.0.0/16" ]; };
        chart = fakeDrv "devsecops-app-chart.tgz";
        image = fakeDrv "devsecops-app-image.tar";
        imageTag = "0.1.0";
      };
    }
  ];

  # The unit files NixOS would write for the services a configuration defines, except those that
  # only add settings to a unit nixpkgs' own module defines (rendered whole only with nixpkgs).
  overridesOfNixpkgsUnits = [ "alloy" "prometheus" ];
  unitFiles = config: lib.mapAttrs (_: systemdServices.toUnitText) (removeAttrs config.systemd.services overridesOfNixpkgsUnits);
  timerFiles = config: lib.mapAttrs (_: systemdServices.toTimerText) config.systemd.timers;
  # The shell scripts of `script`, which NixOS runs as `set -e` scripts (systemd-lib.nix makeJobScript).
  unitScripts = config: lib.mapAttrs (_: s: s.script) (lib.filterAttrs (_: s: s.script != "") config.systemd.services);
in
{
  units = {
    service = unitFiles safe;
    backup = {
      files = unitFiles backedUp;
      timers = timerFiles backedUp;
      settings = backupSettings;
    };
    percent = {
      files = unitFiles percent;
      settings = percentSettings;
    };
    percentFile = {
      files = unitFiles percentFile;
      settings = percentFileSettings;
    };
    appliance = {
      files = unitFiles appliance;
      apiTokenFile = appliance.devsecops.appliance.apiTokenFile;
    };
    vmService = lib.mapAttrs (_: module: unitFiles (node module)) serviceTest.nodes;
    scripts = {
      appliance = unitScripts appliance;
    } // lib.mapAttrs (_: module: unitScripts (node module)) serviceTest.nodes;
  };
  service = {
    unit = safe.systemd.services.devsecops-app;
    failedAssertions = failedAssertions safe;
  };
  serviceUnsafe.failedAssertions = failedAssertions unsafe;
  serviceDatabaseUrls = lib.mapAttrs (_: map (url: { inherit url; failedAssertions = secured { databaseUrl = url; }; })) databaseUrls;
  serviceOverrides.failedAssertions = secured {
    databaseUrlFile = "/run/secrets/database-url";
    extraEnvironment = { DATABASE_URL = "postgres://app:hunter2@db/app"; API_TOKEN_FILE = "/etc/token"; HOST = "0.0.0.0"; RATE_LIMIT_PER_SECOND = "50"; };
  };
  # Secrets by name or by value, beside settings that are none.
  serviceExtraSecrets.failedAssertions = secured {
    extraEnvironment = {
      PGPASSWORD = "hunter2";
      DB_PASSWORD = "hunter2";
      smtp_secret = "hunter2";
      AUTH_TOKEN = "hunter2";
      UPSTREAM = "https://user:hunter2@proxy.example/";
      PGPASSFILE = "/run/secrets/pgpass";
      SIGNING_KEY_FILE = "/run/secrets/key";
      PASSWORDLESS = "1";
      PGSSLMODE = "verify-full";
      RATE_LIMIT_PER_SECOND = "50";
    };
  };
  serviceListeners = map
    (layout: {
      host = lib.elemAt layout 0;
      metricsHost = lib.elemAt layout 1;
      failedAssertions = secured { host = lib.elemAt layout 0; metrics = { host = lib.elemAt layout 1; port = 9000; }; port = 9000; };
    })
    listenerLayouts;
  serviceBackup = {
    inherit (backedUp.systemd.services) devsecops-app devsecops-app-backup;
    restore = backedUp.systemd.services."devsecops-app-restore@";
    timer = backedUp.systemd.timers.devsecops-app-backup;
    failedAssertions = failedAssertions backedUp;
    onPostgres.failedAssertions = failedAssertions backupOnPostgres;
    # Off by default: no units beyond the service.
    byDefault = { services = lib.attrNames safe.systemd.services; timers = lib.attrNames safe.systemd.timers; };
  };
  servicePort80.serviceConfig = port80.systemd.services.devsecops-app.serviceConfig;
  serviceMetricsPort443.serviceConfig = metricsPort443.systemd.services.devsecops-app.serviceConfig;
  serviceProxied.environment = proxied.systemd.services.devsecops-app.environment;
  vmTests = {
    service = {
      nodes = lib.mapAttrs
        (_: module:
          let config = node module; in {
            failedAssertions = failedAssertions config;
            environment = config.systemd.services.devsecops-app.environment;
            inherit (config.services.devsecops-app) databaseUrl;
            tokenBeforeService = config.systemd.services.devsecops-test-token.before;
          })
        serviceTest.nodes;
    };
    appliance = {
      nodes.appliance.failedAssertions = failedAssertions (node applianceTest.nodes.appliance);
    };
  };
  # What each VM test machine has on its PATH beyond NixOS' core packages and systemd: the names of
  # its environment.systemPackages, and k3s when services.k3s is on (tests/nix/vm_commands.py).
  vmTestPrograms = lib.mapAttrs
    (_: test: lib.mapAttrs
      (_: module:
        let config = node module; in {
          packages = map (p: p.name) config.environment.systemPackages;
          k3s = config.services.k3s.enable;
        })
      test.nodes)
    { service = serviceTest; appliance = applianceTest; };
  appliance = {
    k3s = {
      inherit (appliance.services.k3s) extraFlags;
      images = map toString appliance.services.k3s.images;
      chart = { inherit (appliance.services.k3s.autoDeployCharts.devsecops-app) targetNamespace values; };
      namespaceLabels = appliance.services.k3s.manifests.devsecops-namespace.content.metadata.labels;
      traefikConfig = appliance.services.k3s.manifests.traefik-config.content;
    };
    prometheusRules = map toString appliance.services.prometheus.ruleFiles;
    # As written to prometheus.yml.
    prometheusScrapeConfigs = prometheusTypes.withoutNulls appliance.services.prometheus.scrapeConfigs;
    prometheusCheckConfig = appliance.services.prometheus.checkConfig;
    prometheusDiscovery = appliance.services.k3s.manifests.prometheus-discovery.content;
    # What the appliance adds to nixpkgs' prometheus.service: its order against the credentials.
    prometheusUnit = { inherit (appliance.systemd.services.prometheus) after wants requires bindsTo; };
    alloyConfig = toString appliance.services.alloy.configPath;
    lokiConfig = toString appliance.services.loki.configFile;
    grafanaDashboardProvider = toString appliance.services.grafana.provision.dashboards.path;
    sshPasswordAuthentication = appliance.services.openssh.settings.PasswordAuthentication;
    failedAssertions = failedAssertions appliance;
  };
}
