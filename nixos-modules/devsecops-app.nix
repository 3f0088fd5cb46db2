# services.devsecops-app: the service as a hardened systemd unit.
#
# Secrets never enter the Nix store: the API token and a PostgreSQL URL are read from files that
# systemd hands over as credentials (LoadCredential), and the service reads them through
# API_TOKEN_FILE and DATABASE_URL_FILE. Without a database URL it keeps SQLite in its state directory.
{ config, lib, ... }:

let
  cfg = config.services.devsecops-app;
  inherit (lib) mkOption types;

  # Seconds systemd waits after SIGTERM: the serving delay, the drain bound and a margin to exit.
  stopTimeout = cfg.shutdown.delaySeconds + cfg.shutdown.timeoutSeconds + 5;

  metricsHost = if cfg.metrics.host != null then cfg.metrics.host else cfg.host;
  # Binding a port below 1024 is the one privilege the unit may get.
  privilegedPort = cfg.port < 1024 || cfg.metrics.port < 1024;

  # User values are literal; only the module's own %d (the credentials directory) is a specifier.
  literal = import ./systemd-literal.nix { inherit lib; };

  environment = {
    HOST = literal cfg.host;
    PORT = toString cfg.port;
    APP_ENV = cfg.environment;
    DEBUG = lib.boolToString cfg.debug;
    LOG_LEVEL = cfg.logLevel;
    SHUTDOWN_DELAY_MS = toString (cfg.shutdown.delaySeconds * 1000);
    SHUTDOWN_TIMEOUT_SECS = toString cfg.shutdown.timeoutSeconds;
    METRICS_HOST = literal metricsHost;
    METRICS_PORT = toString cfg.metrics.port;
    OPENAPI_PUBLIC = lib.boolToString cfg.openapiPublic;
  }
  // lib.optionalAttrs (cfg.trustedProxies != [ ]) { TRUSTED_PROXIES = literal (lib.concatStringsSep "," cfg.trustedProxies); }
  // lib.optionalAttrs (cfg.apiTokenFile != null) { API_TOKEN_FILE = "%d/api-token"; }
  // (
    if cfg.databaseUrlFile != null then
      { DATABASE_URL_FILE = "%d/database-url"; }
    else if cfg.databaseUrl != null then
      { DATABASE_URL = literal cfg.databaseUrl; }
    else
      { DATABASE_URL = "sqlite:///var/lib/devsecops-app/devsecops-app.db"; }
  )
  // lib.mapAttrs (_: literal) cfg.extraEnvironment;
in
{
  options.services.devsecops-app = {
    enable = lib.mkEnableOption "devsecops-app, the users API with health, readiness and Prometheus metrics";

    package = mkOption {
      type = types.package;
      description = "The devsecops-app package (the flake's packages.<system>.devsecops-app).";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "Address to listen on.";
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      description = "TCP port to listen on. Below 1024 the unit is given CAP_NET_BIND_SERVICE and nothing else.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port in the firewall.";
    };

    metrics = {
      port = mkOption {
        type = types.port;
        default = 9464;
        description = ''
          Port of the internal listener (METRICS_PORT): GET /metrics, /debug/memory and
          /openapi.json. The public port serves neither /metrics nor /debug/memory.
        '';
      };
      host = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "0.0.0.0";
        description = "Address of the internal listener (METRICS_HOST); null: the same as host.";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open the metrics port in the firewall, for a Prometheus on another host.";
      };
    };

    openapiPublic = mkOption {
      type = types.bool;
      default = true;
      description = "Whether the public port also serves /openapi.json (OPENAPI_PUBLIC); the metrics port always does.";
    };

    trustedProxies = mkOption {
      type = types.listOf (types.strMatching "[^,[:space:]]+");
      default = [ ];
      example = [ "127.0.0.1" "10.42.0.0/16" ];
      description = ''
        Addresses or CIDR blocks of the proxies whose X-Forwarded-For/Forwarded hops the service
        believes (TRUSTED_PROXIES), walked from the right. Empty: the headers are ignored and the
        client address is the TCP peer.
      '';
    };

    environment = mkOption {
      type = types.enum [ "development" "production" ];
      default = "production";
      description = ''
        APP_ENV. Production refuses DEBUG and a missing, default or short token, so it needs
        apiTokenFile.
      '';
    };

    databaseUrl = mkOption {
      type = types.nullOr (types.strMatching "(sqlite|postgres|postgresql)://.*");
      default = null;
      example = "postgres:///devsecops?host=/run/postgresql";
      description = ''
        Database URL without a password (it lands in the Nix store). Null keeps SQLite under
        /var/lib/devsecops-app. A URL that carries a password belongs in databaseUrlFile.
      '';
    };

    databaseUrlFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/devsecops-database-url";
      description = "File holding the database URL (with its password), read at start; takes precedence over databaseUrl.";
    };

    apiTokenFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/devsecops-api-token";
      description = "File holding the bearer token writes need (32 characters or more in production).";
    };

    debug = mkOption {
      type = types.bool;
      default = false;
      description = "Enable /debug/memory (refused by the service in production).";
    };

    logLevel = mkOption {
      type = types.enum [ "trace" "debug" "info" "warn" "error" "critical" ];
      default = "info";
      description = "Minimum level of the JSON log lines written to the journal.";
    };

    shutdown = {
      delaySeconds = mkOption {
        type = types.ints.unsigned;
        default = 0;
        description = "Seconds to keep serving after SIGTERM while readiness already reports 503.";
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 20;
        description = "Bound on draining in-flight requests after SIGTERM.";
      };
    };

    extraEnvironment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { RATE_LIMIT_PER_SECOND = "50"; MAX_BODY_BYTES = "65536"; };
      description = "Further settings of the service (see README: configuration), never secrets. Values are literal: a % stays a %.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.environment == "production" -> cfg.apiTokenFile != null;
        message = "services.devsecops-app: production needs apiTokenFile (the service refuses the development token).";
      }
      {
        assertion = cfg.environment == "production" -> !cfg.debug;
        message = "services.devsecops-app: debug is refused in production.";
      }
      {
        assertion = cfg.databaseUrl == null || builtins.match ".*://[^/@]*:[^/@]*@.*" cfg.databaseUrl == null;
        message = "services.devsecops-app: databaseUrl carries a password, which would be world-readable in the Nix store; use databaseUrlFile.";
      }
      {
        assertion = lib.all (name: builtins.match "[A-Za-z_][A-Za-z0-9_]*" name != null) (lib.attrNames cfg.extraEnvironment);
        message = "services.devsecops-app: extraEnvironment names must be environment variable names ([A-Za-z_][A-Za-z0-9_]*).";
      }
      {
        assertion = cfg.metrics.port != cfg.port || metricsHost != cfg.host;
        message = "services.devsecops-app: metrics.port is also port; the internal listener needs its own port.";
      }
      {
        # The service refuses it at start (exit 2): it believed any client's first hop.
        assertion = !(cfg.extraEnvironment ? TRUST_FORWARDED_FOR);
        message = "services.devsecops-app: TRUST_FORWARDED_FOR is no longer read; list the proxies to believe in trustedProxies.";
      }
      {
        assertion = !(cfg.extraEnvironment ? API_TOKEN);
        message = "services.devsecops-app: extraEnvironment.API_TOKEN would be world-readable in the Nix store; use apiTokenFile.";
      }
    ];

    networking.firewall.allowedTCPPorts =
      lib.optional cfg.openFirewall cfg.port ++ lib.optional cfg.metrics.openFirewall cfg.metrics.port;

    systemd.services.devsecops-app = {
      description = "devsecops-app users API";
      wantedBy = [ "multi-user.target" ];
      # PostgreSQL's roles and databases exist once postgresql.target is reached (postgresql-setup).
      after = [ "network-online.target" ] ++ lib.optionals config.services.postgresql.enable [ "postgresql.target" "postgresql-setup.service" ];
      wants = [ "network-online.target" ] ++ lib.optional config.services.postgresql.enable "postgresql.target";
      inherit environment;

      serviceConfig = {
        ExecStart = "${cfg.package}/bin/devsecops-app";
        Type = "exec";
        Restart = "on-failure";
        RestartSec = "2s";
        # SIGTERM starts the service's own drain; systemd waits for it.
        KillSignal = "SIGTERM";
        TimeoutStopSec = stopTimeout;

        DynamicUser = true;
        StateDirectory = "devsecops-app";
        StateDirectoryMode = "0700";
        WorkingDirectory = "/var/lib/devsecops-app";
        LoadCredential =
          lib.optional (cfg.apiTokenFile != null) "api-token:${literal (toString cfg.apiTokenFile)}"
          ++ lib.optional (cfg.databaseUrlFile != null) "database-url:${literal (toString cfg.databaseUrlFile)}";
        UMask = "0077";

        # Sandboxing: nothing but its state directory is writable, no privileges, no devices, a
        # system-call allow-list. `systemd-analyze security devsecops-app` rates it in the VM test.
        CapabilityBoundingSet = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.optionals privilegedPort [ "CAP_NET_BIND_SERVICE" ];
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = !privilegedPort;
        ProtectHostname = true;
        ProtectClock = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
        SystemCallErrorNumber = "EPERM";
        DevicePolicy = "closed";
      };
    };
  };
}
