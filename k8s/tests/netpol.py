"""A small evaluator of Kubernetes NetworkPolicies (networking.k8s.io/v1), to test what rendered
policies allow rather than how they look. Semantics as the API reference and
kubernetes/kubernetes pkg/apis/networking/types.go document them:

- A pod is isolated for ingress (egress) when at least one policy in its namespace selects it and
  lists Ingress (Egress) in policyTypes; policyTypes defaults to [Ingress], plus Egress when the
  policy has an egress section. An isolated pod accepts (sends) only what some selecting policy's
  rule allows; a pod no policy isolates accepts (sends) everything. Policies are additive.
- A connection happens only when the source may send it and the destination may accept it.
- A rule with no `from`/`to` matches every peer, with no `ports` every port. A peer with only
  podSelector means pods of the policy's namespace; only namespaceSelector, every pod of the
  matching namespaces; both, the matching pods of the matching namespaces; ipBlock, addresses in
  the CIDR and not in `except`.
- A named port is resolved against the destination pod's container ports; protocol defaults to
  TCP; endPort makes a range.
"""

import ipaddress
from dataclasses import dataclass, field


@dataclass
class Endpoint:
    name: str
    namespace: str | None = None  # None: outside the cluster
    labels: dict = field(default_factory=dict)
    ip: str | None = None
    ports: dict = field(default_factory=dict)  # container port name -> (number, protocol)

    @property
    def is_pod(self):
        return self.namespace is not None


def selector_matches(selector, labels):
    """A LabelSelector: {} matches everything; matchLabels and matchExpressions all hold."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op}")
    return True


class Cluster:
    def __init__(self, policies, namespaces):
        """policies: NetworkPolicy documents; namespaces: name -> labels (the automatic
        kubernetes.io/metadata.name label is added)."""
        self.policies = policies
        self.namespaces = {name: {**labels, "kubernetes.io/metadata.name": name} for name, labels in namespaces.items()}
        for policy in policies:
            unknown = set(policy["spec"]) - {"podSelector", "policyTypes", "ingress", "egress"}
            if unknown:
                raise ValueError(f"{policy['metadata']['name']}: unknown fields {unknown}")

    @staticmethod
    def _types(spec):
        if "policyTypes" in spec:
            return set(spec["policyTypes"])
        return {"Ingress"} | ({"Egress"} if "egress" in spec else set())

    def _selecting(self, pod, direction):
        return [p for p in self.policies
                if p["metadata"].get("namespace") == pod.namespace
                and direction in self._types(p["spec"])
                and selector_matches(p["spec"]["podSelector"], pod.labels)]

    def _peer_matches(self, peer, policy_namespace, other):
        if "ipBlock" in peer:
            if other.ip is None:
                return False
            address = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(e) for e in block.get("except", []))
        if not other.is_pod:
            return False
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"], self.namespaces.get(other.namespace, {})):
                return False
        elif other.namespace != policy_namespace:
            return False
        return selector_matches(peer.get("podSelector", {}), other.labels)

    @staticmethod
    def _port_matches(ports, destination, port, protocol):
        if not ports:
            return True
        for entry in ports:
            if entry.get("protocol", "TCP") != protocol:
                continue
            wanted = entry.get("port")
            if wanted is None:
                return True
            if isinstance(wanted, str) and not wanted.isdigit():
                named = destination.ports.get(wanted)
                if named and named == (port, protocol):
                    return True
                continue
            low, high = int(wanted), entry.get("endPort", int(wanted))
            if low <= port <= high:
                return True
        return False

    def _allowed(self, pod, other, destination, port, protocol, direction):
        policies = self._selecting(pod, direction)
        if not policies:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(self._peer_matches(p, pod.namespace, other) for p in peers):
                    continue
                if self._port_matches(rule.get("ports"), destination, port, protocol):
                    return True
        return False

    def allows(self, source, destination, port, protocol="TCP"):
        """Whether `source` can open a connection to `destination` on `port`/`protocol`."""
        egress = not source.is_pod or self._allowed(source, destination, destination, port, protocol, "Egress")
        ingress = not destination.is_pod or self._allowed(destination, source, destination, port, protocol, "Ingress")
        return egress and ingress
