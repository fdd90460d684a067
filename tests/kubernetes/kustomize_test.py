#!/usr/bin/env python3
"""Builds deploy/kubernetes with `kubectl kustomize` and checks what it holds.

Usage: kustomize_test.py SOURCE_DIR BIN_DIR

Checks, each of which fails on a real mistake:
  - the build succeeds (kubectl kustomize, as a user would run it);
  - the objects the README promises are there, all in the pcie-fabric
    namespace;
  - every ConfigMap, Secret-free reference (configMapKeyRef, configMap
    volumes) names a ConfigMap the build emits (kustomize's hashed names);
  - the policy ConfigMap holds deploy/policy/policy.textproto byte for byte;
  - every --flag a container passes is a flag its program accepts (its
    --help, from BIN_DIR), so the manifests cannot drift from the programs;
  - the device plugin's pod mounts the kubelet's device-plugin and
    pod-resources directories and the CDI directory.
"""
import os
import re
import subprocess
import sys
import unittest

import yaml

SOURCE_DIR = None
BIN_DIR = None


def build():
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(SOURCE_DIR, "deploy/kubernetes")],
        check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def containers(objs):
    for o in objs:
        spec = o.get("spec", {}).get("template", {}).get("spec")
        if spec:
            for c in spec.get("containers", []):
                yield o, spec, c


class KustomizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = build()

    def kinds(self, kind):
        return [o for o in self.objs if o["kind"] == kind]

    def test_objects_are_there_in_the_namespace(self):
        names = {(o["kind"], o["metadata"]["name"]) for o in self.objs}
        for want in [("Namespace", "pcie-fabric"),
                     ("ServiceAccount", "fabric-manager"),
                     ("ServiceAccount", "fabric-node"),
                     ("Role", "fabric-config-reader"),
                     ("RoleBinding", "fabric-config-reader"),
                     ("StatefulSet", "fabric-manager"),
                     ("Service", "fabric-manager"),
                     ("Service", "fabric-manager-peers"),
                     ("DaemonSet", "fabric-node")]:
            self.assertIn(want, names)
        for o in self.objs:
            if o["kind"] != "Namespace":
                self.assertEqual(o["metadata"].get("namespace"), "pcie-fabric",
                                 o["metadata"]["name"])

    def test_config_map_references_resolve(self):
        emitted = {o["metadata"]["name"] for o in self.kinds("ConfigMap")}
        refs = []
        for _, spec, c in containers(self.objs):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    refs.append(ref["name"])
            for v in spec.get("volumes", []):
                if "configMap" in v:
                    refs.append(v["configMap"]["name"])
        self.assertTrue(refs)
        for r in refs:
            self.assertIn(r, emitted)

    def test_policy_config_map_is_the_default_policy(self):
        [cm] = [o for o in self.kinds("ConfigMap")
                if o["metadata"]["name"].startswith("fabric-policy")]
        with open(os.path.join(SOURCE_DIR, "deploy/policy/policy.textproto")) as f:
            self.assertEqual(cm["data"]["policy.textproto"], f.read())

    def test_every_flag_is_one_the_program_accepts(self):
        helps = {}
        checked = 0
        for _, _, c in containers(self.objs):
            prog = c["command"][0]
            if prog not in helps:
                helps[prog] = subprocess.run(
                    [os.path.join(BIN_DIR, prog), "--help"],
                    capture_output=True, text=True).stdout
            for arg in c.get("args", []):
                flag = re.match(r"(--[a-z0-9-]+)", arg).group(1)
                self.assertRegex(helps[prog], re.escape(flag) + r"\b",
                                 f"{prog} does not accept {flag}")
                checked += 1
        self.assertGreater(checked, 20)

    def test_device_plugin_mounts_the_kubelet_paths(self):
        [ds] = self.kinds("DaemonSet")
        spec = ds["spec"]["template"]["spec"]
        host = {v["name"]: v["hostPath"]["path"]
                for v in spec["volumes"] if "hostPath" in v}
        [plugin] = [c for c in spec["containers"]
                    if c["command"][0] == "fabric-device-plugin"]
        mounted = {host[m["name"]] for m in plugin["volumeMounts"]
                   if m["name"] in host}
        for path in ["/var/lib/kubelet/device-plugins",
                     "/var/lib/kubelet/pod-resources", "/var/run/cdi"]:
            self.assertIn(path, mounted)


if __name__ == "__main__":
    SOURCE_DIR, BIN_DIR = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
