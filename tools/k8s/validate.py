#!/usr/bin/python3
"""Validates Kubernetes manifests offline against the API's schemas, with no API server.

The schemas are the OpenAPI-generated models of Debian's python3-kubernetes: every object is walked
against its model's field names and types (an unknown or misspelt field, a string where a list goes,
a missing required field are errors, as the API server would refuse them), and the formats the models
do not check are checked here: object names, label keys and values, CIDRs, ports.

usage: validate.py FILE|- ...   (multi-document YAML; exit 1 and a line per problem if any)
"""
import ipaddress
import re
import sys

import yaml
from kubernetes.client import models

KINDS = {
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Namespace"): "V1Namespace",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "date": str}


def label_key_ok(key):
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(LABEL_NAME.match(name))


class Checker:
    def __init__(self, where):
        self.where = where
        self.problems = []

    def fail(self, path, what):
        self.problems.append(f"{self.where}: {path}: {what}")

    def value(self, path, typ, v):
        if v is None:
            return
        if typ.startswith("list["):
            if not isinstance(v, list):
                return self.fail(path, f"must be a list of {typ[5:-1]}")
            for i, item in enumerate(v):
                self.value(f"{path}[{i}]", typ[5:-1], item)
        elif typ.startswith("dict("):
            inner = typ[5:-1].split(", ", 1)[1]
            if not isinstance(v, dict):
                return self.fail(path, "must be a map")
            for k, item in v.items():
                self.value(f"{path}.{k}", inner, item)
        elif typ == "object":  # IntOrString, Quantity, RawExtension: checked where they matter
            if not isinstance(v, (str, int, dict, list)):
                self.fail(path, "has a value of no schema type")
        elif typ in PRIMITIVES:
            if typ == "int" and isinstance(v, bool) or not isinstance(v, PRIMITIVES[typ]):
                self.fail(path, f"must be {typ}, not {type(v).__name__}")
        else:
            self.model(path, typ, v)

    def model(self, path, name, obj):
        cls = getattr(models, name)
        if not isinstance(obj, dict):
            return self.fail(path, f"must be an object ({name})")
        by_json = {j: py for py, j in cls.attribute_map.items()}
        for key in obj:
            if key not in by_json:
                self.fail(f"{path}.{key}", f"is not a field of {name}")
        kwargs = {}
        for key, v in obj.items():
            if key in by_json:
                self.value(f"{path}.{key}", cls.openapi_types[by_json[key]], v)
                kwargs[by_json[key]] = v
        # The model's constructor refuses a missing required field (and some enums).
        try:
            cls(**kwargs)
        except ValueError as e:
            self.fail(path, str(e))
        self.formats(path, name, obj)

    def formats(self, path, name, obj):
        if name == "V1ObjectMeta":
            n = obj.get("name")
            if n is not None and (len(n) > 253 or not DNS_SUBDOMAIN.match(n)):
                self.fail(f"{path}.name", f"'{n}' is not a DNS subdomain name")
            ns = obj.get("namespace")
            if ns is not None and (len(ns) > 63 or not DNS_LABEL.match(ns)):
                self.fail(f"{path}.namespace", f"'{ns}' is not a DNS label")
        if name in ("V1ObjectMeta", "V1LabelSelector"):
            for k, v in (obj.get("labels") or obj.get("matchLabels") or {}).items():
                if not label_key_ok(k):
                    self.fail(path, f"label key '{k}' is not valid")
                if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                    self.fail(path, f"label value '{v}' is not valid")
        if name == "V1IPBlock":
            try:
                ipaddress.ip_network(obj.get("cidr", ""), strict=True)
                for c in obj.get("except") or []:
                    ipaddress.ip_network(c, strict=True)
            except ValueError as e:
                self.fail(path, f"bad CIDR: {e}")
        if name == "V1NetworkPolicyPort":
            p = obj.get("port")
            if isinstance(p, int) and not 1 <= p <= 65535:
                self.fail(f"{path}.port", f"{p} is not a port")
            if obj.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                self.fail(f"{path}.protocol", "must be TCP, UDP or SCTP")
        if name == "V1Container" or name == "V1Volume":
            n = obj.get("name", "")
            if len(n) > 63 or not DNS_LABEL.match(n):
                self.fail(f"{path}.name", f"'{n}' is not a DNS label")


def check_document(where, doc):
    c = Checker(where)
    if not isinstance(doc, dict):
        c.fail("$", "is not an object")
        return c.problems
    kind = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    if not kind:
        c.fail("$", f"unknown apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')}")
        return c.problems
    c.model("$", kind, doc)
    if "metadata" not in doc or "name" not in (doc.get("metadata") or {}):
        c.fail("$.metadata.name", "is required")
    return c.problems


def main(paths):
    problems, count = [], 0
    for path in paths:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as e:
            problems.append(f"{path}: not YAML: {e}")
            continue
        for i, doc in enumerate(docs):
            count += 1
            problems += check_document(f"{path}#{i}", doc)
    for p in problems:
        print(p)
    print(f"{count} objects, {len(problems)} problems")
    return 1 if problems or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
