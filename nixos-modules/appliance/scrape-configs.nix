# Prometheus' scrape configuration on the appliance, as plain data (the test command runs promtool on
# it without nixpkgs). The job name is the one the rules and dashboards select on (job="devsecops-app").
# Prometheus runs on the host: it finds the service's pods through the Kubernetes API, as a service
# account that may only read the namespace's endpoints (observability.nix), and scrapes each pod's
# port named "metrics" on the chart's metrics Service, never through the ingress. The node reaches
# its own pods whatever the NetworkPolicy admits: k3s' kube-router accepts traffic to a pod "when
# source is the pod's local node" (docs/nix.md).
{ namespace, credentialsDirectory }:
[
  {
    job_name = "devsecops-app";
    kubernetes_sd_configs = [{
      role = "endpoints";
      api_server = "https://127.0.0.1:6443";
      namespaces.names = [ namespace ];
      authorization.credentials_file = "${credentialsDirectory}/token";
      tls_config.ca_file = "${credentialsDirectory}/ca.crt";
    }];
    relabel_configs = [
      {
        source_labels = [ "__meta_kubernetes_service_label_app_kubernetes_io_component" "__meta_kubernetes_endpoint_port_name" ];
        regex = "metrics;metrics";
        action = "keep";
      }
      # The labels the chart's ServiceMonitor gives the same series in a cluster with the operator.
      { source_labels = [ "__meta_kubernetes_namespace" ]; target_label = "namespace"; }
      { source_labels = [ "__meta_kubernetes_pod_name" ]; target_label = "pod"; }
      { source_labels = [ "__meta_kubernetes_service_name" ]; target_label = "service"; }
    ];
  }
  {
    job_name = "prometheus";
    static_configs = [{ targets = [ "127.0.0.1:9090" ]; }];
  }
]
