# Prometheus' scrape configuration on the appliance, as plain data (the test command runs promtool on
# it without nixpkgs). The job name is the one the rules and dashboards select on (job="devsecops-app").
# The service is scraped through the ingress: Traefik is the only client its NetworkPolicy admits.
{ hostName }:
[
  {
    job_name = "devsecops-app";
    metrics_path = "/metrics";
    static_configs = [{ targets = [ "${hostName}:80" ]; }];
  }
  {
    job_name = "prometheus";
    static_configs = [{ targets = [ "127.0.0.1:9090" ]; }];
  }
]
