# The chart's values on the appliance, as plain data (no nixpkgs needed), so the test command can
# render the chart with them: tests/nix renders k8s/chart with these values and validates the result.
# `app` holds the service settings the appliance's options set; the others keep the chart's defaults.
{ hostName, imageRepository, imageTag, authSecret ? "", app ? { }, backup ? { } }:
{
  image = {
    repository = imageRepository;
    tag = imageTag;
    # Imported from the airgap tarball before k3s starts: nothing is pulled at boot.
    pullPolicy = "IfNotPresent";
  };
  app = {
    environment = "production";
    # TLS is not terminated on the appliance's ingress by default (see docs/nix.md).
    hstsMaxAgeSeconds = 0;
  } // app;
  auth.existingSecret = authSecret;
  database = {
    type = "sqlite";
    # The k3s local-path provisioner backs the claims (the database's and the backups').
    sqlite.persistence.enabled = true;
    # Nightly verified copies on a claim of their own (the backup CronJob); the same disk, so they
    # cover mistakes and corruption, not the loss of the disk: copy them off the node for that.
    sqlite.backup = { enabled = true; } // backup;
  };
  # One node: spreading and disruption budgets have nothing to spread over.
  topologySpread.enabled = false;
  podDisruptionBudget.enabled = false;
  ingress = {
    enabled = true;
    className = "traefik";
    host = hostName;
    tls.enabled = false;
  };
  networkPolicy = {
    # k3s runs Traefik in kube-system; Prometheus on the host scrapes through it.
    ingressController = {
      namespaceSelector."kubernetes.io/metadata.name" = "kube-system";
      podSelector."app.kubernetes.io/name" = "traefik";
    };
  };
}
