# systemd.services as NixOS declares and renders them, for evaluating the project's modules with
# nixpkgs' lib alone (nixos/ is not part of it). Each piece follows nixpkgs' own source (docs/nix.md
# names the files and commits):
#   - options and their types: nixos/lib/systemd-unit-options.nix (unitOption merges lists by
#     concatenation and anything else by equality; serviceConfig checks Type and Restart);
#   - `script` becomes ExecStart, a store script; the stage-2 default `path` and the PATH it makes:
#     nixos/lib/systemd-lib.nix (serviceOptions config, stage2ServiceConfig, serviceConfig);
#   - the derived [Unit] settings: systemd-lib.nix `unitConfig`;
#   - the unit text: systemd-lib.nix `serviceToUnit`, `commonUnitText`, `attrsToSection`,
#     `toOption`: one `Environment=` line per variable, the JSON-quoted "NAME=value", sorted by
#     name; list settings repeat their key;
#   - timers: systemd-unit-options.nix `timerOptions` (timerConfig, the common unit options) and
#     systemd-lib.nix `timerToUnit` (a [Timer] section of timerConfig).
# Not modelled: systemd.globalEnvironment (set by other NixOS modules, not by ours).
{ lib, storePath }:

let
  inherit (lib) mkOption types optionalAttrs optionalString concatStrings concatLists mapAttrsToList isList;

  fakeDrv = name: { type = "derivation"; outPath = storePath name; inherit name; };

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      let defs' = lib.filterOverrides defs; in
      if isList (lib.head defs').value
      then lib.concatMap (def: if isList def.value then def.value else throw "${lib.showOption loc}: a mix of list and non-list definitions") defs'
      else lib.mergeEqualOption loc defs';
  };
  checkService = attrs:
    (!(attrs ? Type) || lib.elem attrs.Type [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "idle" ])
    && (!(attrs ? Restart) || lib.elem attrs.Restart [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "always" ]);
  unitNames = mkOption { type = types.listOf types.str; default = [ ]; };

  commonOptions = {
    description = mkOption { type = types.singleLineStr; default = ""; };
    wantedBy = unitNames;
    requiredBy = unitNames;
    requires = unitNames;
    wants = unitNames;
    after = unitNames;
    before = unitNames;
    bindsTo = unitNames;
    partOf = unitNames;
    conflicts = unitNames;
    unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
  derivedUnitConfig = config:
    optionalAttrs (config.requires != [ ]) { Requires = toString config.requires; }
    // optionalAttrs (config.wants != [ ]) { Wants = toString config.wants; }
    // optionalAttrs (config.after != [ ]) { After = toString config.after; }
    // optionalAttrs (config.before != [ ]) { Before = toString config.before; }
    // optionalAttrs (config.bindsTo != [ ]) { BindsTo = toString config.bindsTo; }
    // optionalAttrs (config.partOf != [ ]) { PartOf = toString config.partOf; }
    // optionalAttrs (config.conflicts != [ ]) { Conflicts = toString config.conflicts; }
    // optionalAttrs (config.description != "") { Description = config.description; };

  timer = { config, ... }: {
    options = commonOptions // {
      timerConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    };
    config.unitConfig = derivedUnitConfig config;
  };

  service = { name, config, ... }: {
    options = commonOptions // {
      environment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      path = mkOption { type = types.listOf (types.oneOf [ types.package types.str ]); default = [ ]; };
      serviceConfig = mkOption { type = types.addCheck (types.attrsOf unitOption) checkService; default = { }; };
      script = mkOption { type = types.lines; default = ""; };
    };
    config = {
      path = lib.mkAfter (map fakeDrv [ "coreutils" "findutils" "gnugrep" "gnused" "systemd" ]);
      environment.PATH = "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
      serviceConfig.ExecStart = lib.mkIf (config.script != "") "${storePath "unit-script-${name}-start"}/bin/${name}-start ";
      unitConfig = derivedUnitConfig config;
    };
  };

  toOption = x: if x == true then "true" else if x == false then "false" else toString x;
  attrsToSection = as: concatStrings (concatLists (mapAttrsToList
    (name: value: map (x: "${name}=${toOption x}\n") (if isList value then value else [ value ]))
    as));
in
{
  type = types.attrsOf (types.submodule service);
  timersType = types.attrsOf (types.submodule timer);

  # The text of /etc/systemd/system/<name>.timer.
  toTimerText = def:
    "[Unit]\n${attrsToSection def.unitConfig}\n"
    + "[Timer]\n${attrsToSection def.timerConfig}"
    + optionalString (def.wantedBy != [ ]) "\n[Install]\nWantedBy=${lib.concatStringsSep " " def.wantedBy}\n";

  # The text of /etc/systemd/system/<name>.service.
  toUnitText = def:
    "[Unit]\n${attrsToSection def.unitConfig}\n"
    + "[Service]\n"
    + concatStrings (map
      (n: optionalString (def.environment.${n} != null) "Environment=${builtins.toJSON "${n}=${def.environment.${n}}"}\n")
      (builtins.attrNames def.environment))
    + attrsToSection def.serviceConfig
    + optionalString (def.wantedBy != [ ]) "\n[Install]\nWantedBy=${lib.concatStringsSep " " def.wantedBy}\n";
}
