#!/usr/bin/env bash
# Prints the Secrets the manifests mount, from a PKI directory made by
# deploy/pki.sh (and etcd's client certificate), as YAML for kubectl apply:
#   deploy/kubernetes/make-secrets.sh PKI_DIR MANAGER_NAME ETCD_DIR | kubectl apply -f -
# ETCD_DIR holds ca.crt, client.crt and client.key of your etcd cluster.
# Nothing secret is kept in the repository; node keys stay on their hosts
# (node-daemons.yaml).
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 PKI_DIR MANAGER_NAME ETCD_DIR" >&2
  exit 2
fi
pki=$1 name=$2 etcd=$3
kubectl create secret generic fabric-manager-tls -n pcie-fabric \
  --from-file=tls.crt="$pki/manager-$name.crt" \
  --from-file=tls.key="$pki/manager-$name.key" \
  --from-file=ca.crt="$pki/ca.crt" --dry-run=client -o yaml
echo ---
kubectl create secret generic fabric-etcd-client-tls -n pcie-fabric \
  --from-file=tls.crt="$etcd/client.crt" \
  --from-file=tls.key="$etcd/client.key" \
  --from-file=ca.crt="$etcd/ca.crt" --dry-run=client -o yaml
