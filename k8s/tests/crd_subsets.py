"""Schemas of the custom resources whose CRDs are not among the published ones in ../shared/schemas:
only the fields the chart renders, each with the type, enum, pattern and `required` its upstream
CRD gives it, and every object closed, so that a misspelt or unknown field fails. Read from:

- VerticalPodAutoscaler autoscaling.k8s.io/v1: kubernetes/autoscaler
  `vertical-pod-autoscaler/deploy/vpa-v1-crd-gen.yaml` @01d08994 (targetRef requires kind and
  name; updateMode enum; containerPolicies' controlledValues enum and mode).
- ScheduledBackup postgresql.cnpg.io/v1: cloudnative-pg/cloudnative-pg
  `config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml` @02a1a3bd (cluster and schedule
  required; method, backupOwnerReference enums; pluginConfiguration requires name).
- ObjectStore barmancloud.cnpg.io/v1: cloudnative-pg/plugin-barman-cloud
  `config/crd/bases/barmancloud.cnpg.io_objectstores.yaml` @06b1dee5 (configuration and its
  destinationPath required, serverName forbidden there; retentionPolicy pattern; compression enums).
- Middleware traefik.io/v1alpha1: traefik/traefik
  `docs/content/reference/dynamic-configuration/traefik.io_middlewares.yaml` @cb0b2869 (buffering's
  four byte counts are int64 integers).
"""

QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string",
                                             "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"}]}


def closed(properties, required=()):
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


STRING = {"type": "string"}
METADATA = {"type": "object"}
SECRET_KEY = closed({"name": STRING, "key": STRING}, ["key", "name"])


def resource(api_version, kind, spec):
    return closed({"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
                  ["apiVersion", "kind", "metadata", "spec"])


SCHEMAS = {
    ("autoscaling.k8s.io/v1", "VerticalPodAutoscaler"): resource("autoscaling.k8s.io/v1", "VerticalPodAutoscaler", closed({
        "targetRef": closed({"apiVersion": STRING, "kind": STRING, "name": STRING}, ["kind", "name"]),
        "updatePolicy": closed({"updateMode": {"enum": ["Off", "Initial", "Recreate", "InPlaceOrRecreate", "InPlace"]}}),
        "resourcePolicy": closed({"containerPolicies": {"type": "array", "items": closed({
            "containerName": STRING,
            "mode": {"enum": ["Auto", "Off"]},
            "controlledResources": {"type": "array", "items": STRING},
            "controlledValues": {"enum": ["RequestsAndLimits", "RequestsOnly"]},
            "minAllowed": {"type": "object", "additionalProperties": QUANTITY},
            "maxAllowed": {"type": "object", "additionalProperties": QUANTITY},
        })}}),
    }, ["targetRef"])),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): resource("postgresql.cnpg.io/v1", "ScheduledBackup", closed({
        "schedule": STRING,
        "immediate": {"type": "boolean"},
        "suspend": {"type": "boolean"},
        "backupOwnerReference": {"enum": ["none", "self", "cluster"]},
        "cluster": closed({"name": STRING}, ["name"]),
        "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
        "pluginConfiguration": closed({"name": STRING, "parameters": {"type": "object", "additionalProperties": STRING}},
                                      ["name"]),
        "target": {"enum": ["primary", "prefer-standby"]},
    }, ["cluster", "schedule"])),
    ("barmancloud.cnpg.io/v1", "ObjectStore"): resource("barmancloud.cnpg.io/v1", "ObjectStore", closed({
        "retentionPolicy": {"type": "string", "pattern": "^[1-9][0-9]*[dwm]$"},
        "configuration": closed({
            "destinationPath": {"type": "string", "minLength": 1},
            "endpointURL": STRING,
            "s3Credentials": closed({"accessKeyId": SECRET_KEY, "secretAccessKey": SECRET_KEY, "region": SECRET_KEY,
                                     "sessionToken": SECRET_KEY, "inheritFromIAMRole": {"type": "boolean"}}),
            "wal": closed({"compression": {"enum": ["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"]},
                           "maxParallel": {"type": "integer", "minimum": 1}}),
            "data": closed({"compression": {"enum": ["bzip2", "gzip", "snappy"]},
                            "jobs": {"type": "integer", "minimum": 1}}),
        }, ["destinationPath"]),
    }, ["configuration"])),
    ("traefik.io/v1alpha1", "Middleware"): resource("traefik.io/v1alpha1", "Middleware", closed({
        "buffering": closed({key: {"type": "integer", "minimum": 0} for key in
                             ("maxRequestBodyBytes", "memRequestBodyBytes", "maxResponseBodyBytes",
                              "memResponseBodyBytes")} | {"retryExpression": STRING}),
    })),
}
