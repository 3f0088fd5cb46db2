# What the container says about itself: shared by the Nix image (nix/packages.nix) and compared with
# the Dockerfile by the test command (tests/nix), so the two builds of the image cannot drift apart.
# Plain data: evaluating it needs no nixpkgs. Version and revision are added per build.
{
  uid = 10001;
  gid = 10001;
  port = 8080;
  entrypoint = [ "/usr/local/bin/devsecops-app" ];
  env = {
    HOST = "0.0.0.0";
    PORT = "8080";
    DATABASE_URL = "sqlite:///data/devsecops-app.db";
    SSL_CERT_FILE = "/etc/ssl/certs/ca-certificates.crt";
  };
  labels = {
    "org.opencontainers.image.title" = "devsecops-app";
    "org.opencontainers.image.description" = "Users API with health, readiness, Prometheus metrics and JSON logs";
    "org.opencontainers.image.source" = "https://github.com/devsecops-platform/devsecops";
    "org.opencontainers.image.licenses" = "Apache-2.0";
  };
}
