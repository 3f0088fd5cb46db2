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

  stateDirectory = "/var/lib/devsecops-app";
  backupDirectory = "/var/lib/devsecops-app-backups";
  sqliteDefault = cfg.databaseUrl == null && cfg.databaseUrlFile == null;
  usesSqlite = sqliteDefault || (cfg.databaseUrl != null && lib.hasPrefix "sqlite:" cfg.databaseUrl);

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
      { DATABASE_URL = "sqlite://${stateDirectory}/devsecops-app.db"; }
  )
  // lib.mapAttrs (_: literal) cfg.extraEnvironment;

  # What `backup` and `restore` read: the database as the service names it, and the settings for
  # reaching it; nothing else (no token, no ports).
  databaseEnvironment = lib.filterAttrs
    (name: _: lib.elem name [ "DATABASE_URL" "LOG_LEVEL" "CONFIG_FILE" "DB_STATEMENT_TIMEOUT_MS" "DB_ACQUIRE_TIMEOUT_MS" ])
    environment;

  # Sandboxing shared by the service and its backup and restore units: nothing but the state
  # directories is writable, no privileges, no devices, a system-call allow-list.
  sandbox = {
    DynamicUser = true;
    UMask = "0077";
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
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

  # The backup and restore commands run as the service's own dynamic user (same name, so the same
  # UID while both run; systemd chowns the state directories to it otherwise), offline.
  databaseTool = sandbox // {
    Type = "oneshot";
    User = "devsecops-app";
    StateDirectory = [ "devsecops-app" "devsecops-app-backups" ];
    StateDirectoryMode = "0700";
    WorkingDirectory = stateDirectory;
    CapabilityBoundingSet = [ "" ];
    PrivateUsers = true;
    PrivateNetwork = true;
    IPAddressDeny = "any";
    RestrictAddressFamilies = [ "none" ];
  };
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

    backup = {
      enable = lib.mkEnableOption ''
        scheduled online backups of the SQLite database: `devsecops-app backup` (a verified copy
        taken while the service runs) into ${backupDirectory}, from a systemd timer. Restore one
        with the service stopped: `systemctl start devsecops-app-restore@<file name>`
      '';
      schedule = mkOption {
        type = types.str;
        default = "daily";
        example = "*-*-* 03:17:00";
        description = "When to back up: a systemd calendar expression (OnCalendar=, systemd.time(7)). A run missed while the machine was off happens at boot.";
      };
      keep = mkOption {
        type = types.ints.positive;
        default = 7;
        description = "Backups kept in ${backupDirectory}; the backup command deletes older ones after a verified copy.";
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
        assertion = cfg.backup.enable -> usesSqlite;
        message = "services.devsecops-app: backup.enable copies a SQLite database; with PostgreSQL use pg_dump (docs/kubernetes.md), or set databaseUrl to a sqlite:// URL (a databaseUrlFile cannot be told apart).";
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

      # `systemd-analyze security devsecops-app` rates the sandbox in the VM test.
      serviceConfig = sandbox // {
        ExecStart = "${cfg.package}/bin/devsecops-app";
        Type = "exec";
        Restart = "on-failure";
        RestartSec = "2s";
        # SIGTERM starts the service's own drain; systemd waits for it.
        KillSignal = "SIGTERM";
        TimeoutStopSec = stopTimeout;

        StateDirectory = "devsecops-app";
        StateDirectoryMode = "0700";
        WorkingDirectory = stateDirectory;
        LoadCredential =
          lib.optional (cfg.apiTokenFile != null) "api-token:${literal (toString cfg.apiTokenFile)}"
            ++ lib.optional (cfg.databaseUrlFile != null) "database-url:${literal (toString cfg.databaseUrlFile)}";

        # Binding a port below 1024 is the one privilege the unit may get.
        CapabilityBoundingSet = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.optionals privilegedPort [ "CAP_NET_BIND_SERVICE" ];
        PrivateUsers = !privilegedPort;
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
      };
    };

    # A verified online copy on a schedule, the oldest beyond `keep` deleted by the command itself.
    # The service keeps running; the command shares its database lock (backup-interface: a
    # restore cannot start meanwhile).
    systemd.services.devsecops-app-backup = lib.mkIf cfg.backup.enable {
      description = "devsecops-app: online backup of the SQLite database";
      after = [ "devsecops-app.service" ];
      environment = databaseEnvironment;
      serviceConfig = databaseTool // {
        ExecStart = "${cfg.package}/bin/devsecops-app backup --dir ${backupDirectory} --keep ${toString cfg.backup.keep}";
      };
    };
    systemd.timers.devsecops-app-backup = lib.mkIf cfg.backup.enable {
      description = "devsecops-app: scheduled backups";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.backup.schedule;
        # A run missed while the machine was off happens when it is back.
        Persistent = true;
        RandomizedDelaySec = "5min";
      };
    };

    # Restore a backup by its file name in the backup directory, with the service stopped (the
    # command refuses, exit 3, while the service holds the database):
    #   systemctl stop devsecops-app
    #   systemctl start devsecops-app-restore@devsecops-app-20261120T031700.000Z.db
    #   systemctl start devsecops-app
    systemd.services."devsecops-app-restore@" = lib.mkIf cfg.backup.enable {
      description = "devsecops-app: restore the SQLite database from backup %i";
      conflicts = [ "devsecops-app-backup.service" ];
      environment = databaseEnvironment;
      serviceConfig = databaseTool // {
        ExecStart = "${cfg.package}/bin/devsecops-app restore --from ${backupDirectory}/%i";
      };
    };
  };
}
