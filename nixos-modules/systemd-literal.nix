# A string as a literal value of a systemd unit setting that resolves %-specifiers (Environment=,
# LoadCredential='s path; systemd.unit(5), "Specifiers"). NixOS writes such values as they are, so
# each % must reach systemd as %%: else a percent-encoded URL loses its whole line (%2F is no
# specifier) or changes silently (%C is the cache directory).
{ lib }:
lib.replaceStrings [ "%" ] [ "%%" ]
