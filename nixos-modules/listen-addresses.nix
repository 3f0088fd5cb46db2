# Whether two listen addresses on the same port would collide, as Linux decides when the service
# binds the second one (std's TcpListener::bind: SO_REUSEADDR, the system's default IPV6_V6ONLY,
# which NixOS leaves at 0): an IPv4 wildcard holds every IPv4 address, an IPv6 wildcard every
# address of both families, a v4-mapped IPv6 address (::ffff:a.b.c.d, in either notation) its IPv4
# one. A host name may resolve to any address, so it collides with everything: refusing a layout
# that might work is the safe side.
# tests/nix/test_listen_addresses.py compares each verdict with real binds on the test machine.
{ lib }:

let
  inherit (lib) all concatStringsSep elemAt fromHexString genList head length splitString tail take toHexString toLower;

  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  # Canonical dotted quads only: a leading zero makes glibc read the octet as octal.
  isIPv4 = a: builtins.match "${octet}\\.${octet}\\.${octet}\\.${octet}" a != null;

  # IPv6 text (RFC 4291 2.2) without an embedded dotted quad: eight groups, or fewer around one
  # "::"; leading zeros dropped so that equal addresses compare equal. null if it is not one.
  ipv6Groups = text:
    let
      halves = splitString "::" text;
      groups = s: if s == "" then [ ] else splitString ":" s;
      left = groups (head halves);
      right = if length halves == 2 then groups (elemAt halves 1) else [ ];
      given = length left + length right;
      all8 = if length halves == 1 then left else left ++ genList (_: "0") (8 - given) ++ right;
      valid = length halves <= 2
        && (if length halves == 1 then given == 8 else given <= 7)
        && all (g: builtins.match "[0-9a-f]{1,4}" g != null) all8;
      strip = g: head (builtins.match "0*([0-9a-f]+)" g);
    in
    if valid then map strip all8 else null;

  # An IPv6 address ending in a dotted quad (RFC 4291 2.2, form 3) as its last two groups.
  dottedTail = text:
    let
      m = builtins.match "(.*:)${octet}\\.${octet}\\.${octet}\\.${octet}" text;
      byte = i: lib.toInt (elemAt m i);
    in
    if m == null then text
    else toLower "${head m}${toHexString (byte 1 * 256 + byte 2)}:${toHexString (byte 3 * 256 + byte 4)}";

  # The IPv4 address in the last two groups of a v4-mapped IPv6 address.
  mappedIPv4 = groups:
    let
      high = fromHexString (elemAt groups 6);
      low = fromHexString (elemAt groups 7);
    in
    concatStringsSep "." (map toString [ (high / 256) (lib.mod high 256) (low / 256) (lib.mod low 256) ]);

  parse = host:
    let
      text = toLower host;
      zoned = splitString "%" text;
      groups = ipv6Groups (dottedTail (head zoned));
      zone = concatStringsSep "%" (tail zoned);
      mapped = groups != null && take 6 groups == [ "0" "0" "0" "0" "0" "ffff" ];
    in
    if isIPv4 text then { family = "ipv4"; address = text; wildcard = text == "0.0.0.0"; }
    else if groups != null then {
      family = "ipv6";
      address = concatStringsSep ":" groups + lib.optionalString (zone != "") "%${zone}";
      wildcard = all (g: g == "0") groups;
      ipv4 = if mapped then mappedIPv4 groups else null;
    }
    else { family = "name"; };
in
{
  overlap = a: b:
    let
      p = parse a;
      q = parse b;
      v6 = if p.family == "ipv6" then p else q;
      v4 = if p.family == "ipv4" then p else q;
    in
    if p.family == "name" || q.family == "name" then true
    else if p.family == q.family then p.address == q.address || p.wildcard || q.wildcard
    else v6.wildcard || (v6.ipv4 != null && (v4.wildcard || v6.ipv4 == v4.address));
}
