# The API server's admission configuration: Pod Security Standards "restricted" enforced, audited and
# warned cluster-wide. Only kube-system is exempt (k3s' own addons: CoreDNS, Traefik, the local-path
# provisioner and metrics-server need more than restricted allows). Plain data: the test command
# checks it without nixpkgs.
{
  apiVersion = "apiserver.config.k8s.io/v1";
  kind = "AdmissionConfiguration";
  plugins = [
    {
      name = "PodSecurity";
      configuration = {
        apiVersion = "pod-security.admission.config.k8s.io/v1";
        kind = "PodSecurityConfiguration";
        defaults = {
          enforce = "restricted";
          enforce-version = "latest";
          audit = "restricted";
          audit-version = "latest";
          warn = "restricted";
          warn-version = "latest";
        };
        exemptions = {
          usernames = [ ];
          runtimeClasses = [ ];
          namespaces = [ "kube-system" ];
        };
      };
    }
  ];
}
