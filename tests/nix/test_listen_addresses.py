"""services.devsecops-app refuses a metrics listener that would collide with the public one, judged
against what Linux does: each layout of tests/nix/eval-modules.nix (`listenerLayouts`, both on one
port) is bound here as the service binds it (std's TcpListener::bind: each resolved address in
turn, SO_REUSEADDR, listen; the public listener first), and the module must refuse every layout
whose second bind fails. It may refuse more only where a host name stands in for an address."""

import ipaddress
import socket


def bind(host, port):
    """The first address of `host` that binds and listens, as std's TcpListener::bind tries them."""
    error = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(128)
            return sock
        except OSError as e:
            error = e
            sock.close()
    raise error


def collide(host, metrics_host):
    """Whether binding metrics_host fails once host listens on the same port (a free one)."""
    probe = bind(host, 0)
    port = probe.getsockname()[1]
    probe.close()
    public = bind(host, port)
    try:
        bind(metrics_host, port).close()
        return False
    except OSError:
        return True
    finally:
        public.close()


def is_name(host):
    try:
        ipaddress.ip_address(host.split("%")[0])
        return False
    except ValueError:
        return True


def test_every_layout_that_collides_on_this_machine_is_refused(modules):
    # The module judges for the kernel's default, which NixOS keeps: an IPv6 wildcard also holds
    # IPv4. On a machine set otherwise the binds below would not be NixOS's.
    with open("/proc/sys/net/ipv6/bindv6only") as f:
        assert f.read().strip() == "0", "net.ipv6.bindv6only is not the kernel's default here"
    layouts = modules["serviceListeners"]
    verdicts = []
    for layout in layouts:
        refused = any("metrics.port is also port" in m for m in layout["failedAssertions"])
        verdicts.append((layout["host"], layout["metricsHost"], collide(layout["host"], layout["metricsHost"]), refused))
    accepted_collisions = [v for v in verdicts if v[2] and not v[3]]
    assert accepted_collisions == [], "the module accepts layouts the service cannot bind"
    overcautious = [v for v in verdicts if v[3] and not v[2] and not (is_name(v[0]) or is_name(v[1]))]
    assert overcautious == [], "refused, yet both addresses bind"
    # Both outcomes are exercised: wildcards of each family, equal addresses, distinct ones.
    assert {v[2] for v in verdicts} == {True, False}
    assert ("0.0.0.0", "127.0.0.1", True, True) in verdicts
    assert ("::", "127.0.0.1", True, True) in verdicts
    assert ("127.0.0.1", "127.0.0.2", False, False) in verdicts
    # A v4-mapped address holds its own IPv4 address, in either notation, and no other.
    assert ("::ffff:127.0.0.1", "127.0.0.1", True, True) in verdicts
    assert ("::ffff:127.0.0.2", "127.0.0.1", False, False) in verdicts

