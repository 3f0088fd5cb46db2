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
  listenAddresses = import ./listen-addresses.nix { inherit lib; };
  # The service binds both listeners at start and exits 2 when the second collides with the first.
  listenersCollide = cfg.port != 0 && cfg.metrics.port == cfg.port && listenAddresses.overlap cfg.host metricsHost;

  # sqlx-postgres takes a password from the URL's user info and from a `password` query parameter,
  # keys percent-decoded first (sqlx-postgres 0.8.6 src/options/parse.rs, url's query_pairs).
  # Either would put it in the world-readable store. The user info is what precedes the authority's
  # last `@` (the authority ends at the first `/`, `?` or `#`), the password what follows its first
  # `:` (WHATWG URL, as the url crate parses: `postgres://a@b:pw@db/x` has user `a@b`, password
  # `pw`). Keys are compared case-insensitively, which refuses more than sqlx reads.
  percentDecode = text: lib.concatMapStrings
    (piece:
      if !builtins.isList piece then piece
      else if lib.head piece == "00" then ""
      else builtins.fromJSON "\"\\u00${lib.head piece}\"")
    (builtins.split "%([0-9A-Fa-f]{2})" (builtins.replaceStrings [ "+" ] [ " " ] text));
  queryKeys = url:
    let
      beforeFragment = lib.head (lib.splitString "#" url);
      query = lib.concatStringsSep "?" (lib.drop 1 (lib.splitString "?" beforeFragment));
    in
    map (pair: lib.toLower (percentDecode (lib.head (lib.splitString "=" pair)))) (lib.splitString "&" query);
  userInfo = url:
    let m = builtins.match "[^:/?#]*://([^/?#]*)@[^@/?#]*([/?#].*)?" url;
    in if m == null then null else lib.head m;
  carriesPassword = url:
    let info = userInfo url;
    in (info != null && lib.hasInfix ":" info) || lib.elem "password" (queryKeys url);

  # Secrets in extraEnvironment would be as world-readable as in databaseUrl: variables that are
  # passwords (sqlx-postgres reads PGPASSWORD as the database password, src/options/mod.rs), names
  # that say they hold one, and URLs with a password, whatever the variable.
  secretName = name:
    let upper = lib.toUpper name;
    in name == "PGPASSWORD" || (!lib.hasSuffix "_FILE" upper && builtins.match "(.*_)?(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS?)(_.*)?" upper != null);
  secretVariables = lib.filter
    (name: name != "API_TOKEN" && (secretName name || carriesPassword cfg.extraEnvironment.${name}))
    (lib.attrNames cfg.extraEnvironment);

  stateDirectory = "/var/lib/devsecops-app";
  backupDirectory = "/var/lib/devsecops-app-backups";
  sqliteDefault = cfg.databaseUrl == null && cfg.databaseUrlFile == null;
  usesSqlite = sqliteDefault || (cfg.databaseUrl != null && lib.hasPrefix "sqlite:" cfg.databaseUrl);

  # Every variable the module sets itself, with the option that sets it (null: not set in this
  # configuration). extraEnvironment may name none of them: it would replace the module's value
  # without a word (a DATABASE_URL in the store beside DATABASE_URL_FILE, say).
  moduleEnvironment = {
    HOST = { option = "host"; value = literal cfg.host; };
    PORT = { option = "port"; value = toString cfg.port; };
    APP_ENV = { option = "environment"; value = cfg.environment; };
    DEBUG = { option = "debug"; value = lib.boolToString cfg.debug; };
    LOG_LEVEL = { option = "logLevel"; value = cfg.logLevel; };
    SHUTDOWN_DELAY_MS = { option = "shutdown.delaySeconds"; value = toString (cfg.shutdown.delaySeconds * 1000); };
    SHUTDOWN_TIMEOUT_SECS = { option = "shutdown.timeoutSeconds"; value = toString cfg.shutdown.timeoutSeconds; };
    METRICS_HOST = { option = "metrics.host"; value = literal metricsHost; };
    METRICS_PORT = { option = "metrics.port"; value = toString cfg.metrics.port; };
    OPENAPI_PUBLIC = { option = "openapiPublic"; value = lib.boolToString cfg.openapiPublic; };
    TRUSTED_PROXIES = { option = "trustedProxies"; value = if cfg.trustedProxies == [ ] then null else literal (lib.concatStringsSep "," cfg.trustedProxies); };
    API_TOKEN_FILE = { option = "apiTokenFile"; value = if cfg.apiTokenFile == null then null else "%d/api-token"; };
    DATABASE_URL_FILE = { option = "databaseUrlFile"; value = if cfg.databaseUrlFile == null then null else "%d/database-url"; };
    DATABASE_URL = {
      option = "databaseUrl";
      value =
        if cfg.databaseUrlFile != null then null
        else if cfg.databaseUrl != null then literal cfg.databaseUrl
        else "sqlite://${stateDirectory}/devsecops-app.db";
    };
  };
  overriddenVariables = lib.filter (name: moduleEnvironment ? ${name}) (lib.attrNames cfg.extraEnvironment);

  environment = lib.mapAttrs (_: v: v.value) (lib.filterAttrs (_: v: v.value != null) moduleEnvironment)
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
      description = "File holding the bearer token writes need (32 characters to 512 bytes in production).";
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
      description = ''
        Further settings of the service (see README: configuration), never secrets: they land in
        the world-readable Nix store, so the module refuses PGPASSWORD, names of passwords, secrets,
        tokens or credentials (other than *_FILE) and URLs with a password, as well as the variables
        it sets itself. Values are literal: a % stays a %.
      '';
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
        assertion = cfg.databaseUrl == null || !carriesPassword cfg.databaseUrl;
        message = "services.devsecops-app: databaseUrl carries a password (user:password@ or a password= parameter), which would be world-readable in the Nix store; use databaseUrlFile.";
      }
      {
        assertion = lib.all (name: builtins.match "[A-Za-z_][A-Za-z0-9_]*" name != null) (lib.attrNames cfg.extraEnvironment);
        message = "services.devsecops-app: extraEnvironment names must be environment variable names ([A-Za-z_][A-Za-z0-9_]*).";
      }
      {
        assertion = !listenersCollide;
        message = "services.devsecops-app: metrics.port is also port (${toString cfg.port}) on an address that overlaps host's (host ${cfg.host}, metrics.host ${metricsHost}); the service would exit 2 at start. Give the internal listener its own port.";
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
        assertion = overriddenVariables == [ ];
        message = "services.devsecops-app: extraEnvironment sets what the module sets itself: ${lib.concatMapStringsSep ", " (name: "${name} (use ${moduleEnvironment.${name}.option})") overriddenVariables}.";
      }
      {
        assertion = secretVariables == [ ];
        message = "services.devsecops-app: extraEnvironment would put a secret in the world-readable Nix store: ${lib.concatStringsSep ", " secretVariables}. Pass passwords in databaseUrlFile and the token in apiTokenFile.";
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
    # No Conflicts= with the backup: systemd stops the other unit in both directions
    # (systemd.unit(5)), so a backup the timer starts during a restore would SIGTERM the restore.
    # The database lock keeps them apart instead: a backup started during a restore refuses (the
    # restore holds the lock exclusively). After= makes a restore started during a backup wait for
    # it to finish instead of refusing.
    systemd.services."devsecops-app-restore@" = lib.mkIf cfg.backup.enable {
      description = "devsecops-app: restore the SQLite database from backup %i";
      after = [ "devsecops-app-backup.service" ];
      environment = databaseEnvironment;
      serviceConfig = databaseTool // {
        ExecStart = "${cfg.package}/bin/devsecops-app restore --from ${backupDirectory}/%i";
      };
    };
  };
}
