# k3s' bundled Traefik on the appliance, as plain data (no nixpkgs needed): the service's request
# limits and the JSON access log shared with the MicroK8s path (k8s/platform/traefik-values.json,
# the one source), plus the layout that lets Traefik see the client's address. k3s' ServiceLB
# forwards through its svclb pods with MASQUERADE (k3s-io/klipper-lb `entry`), so Traefik would log
# the svclb pod as every client; host ports on a DaemonSet (the CNI portmap plugin's DNAT) keep the
# client's address, as MicroK8s' ingress addon does. k3s merges these values over its own
# (HelmChartConfig "traefik" in kube-system).
let
  shared = builtins.fromJSON (builtins.readFile ../../k8s/platform/traefik-values.json);
in
shared // {
  deployment.kind = "DaemonSet";
  ports = {
    web.hostPort = 80;
    websecure.hostPort = 443;
  };
  # No LoadBalancer Service, hence no published address for Ingress status.
  service.enabled = false;
  providers.kubernetesIngress.publishedService.enabled = false;
}
