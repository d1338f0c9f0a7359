#!/usr/bin/env bash
# End-to-end run on a kind cluster: build the image, create the cluster (e2e/kind-config.yaml),
# load the image, install the chart with mock NVML (e2e/values-kind.yaml), run the e2e tests
# against it. Needs docker, kind, helm and kubectl; without them it says so and exits 0 (the
# same tests also run in CI against the in-process local cluster: `pytest e2e`).
#
# Environment:
#   KIND_CLUSTER      cluster name (default gpu-dra-e2e)
#   KIND_NODE_IMAGE   node image, Kubernetes >= 1.34 (default kindest/node:v1.34.0)
#   IMAGE             image to build and load (default gpu-dra:e2e)
#   KEEP_CLUSTER=1    keep the cluster afterwards (default: delete it)
#   PYTEST            pytest command (default .venv/bin/pytest if present, else pytest)
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-gpu-dra-e2e}"
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
IMAGE="${IMAGE:-gpu-dra:e2e}"
NAMESPACE=gpu-dra-system
if [[ -z "${PYTEST:-}" ]]; then
  if [[ -x .venv/bin/pytest ]]; then PYTEST=.venv/bin/pytest; else PYTEST=pytest; fi
fi

skip() { echo "skipping: $1" >&2; exit 0; }
command -v docker >/dev/null 2>&1 || skip "docker not available (no docker command)"
docker info >/dev/null 2>&1 || skip "docker not available (cannot reach the docker daemon)"
command -v kind >/dev/null 2>&1 || skip "kind not available (https://kind.sigs.k8s.io)"
command -v helm >/dev/null 2>&1 || skip "helm not available (https://helm.sh)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl not available"

log() { echo "==> $*" >&2; }
WORK="$(mktemp -d)"
KUBECONFIG_FILE="$WORK/kubeconfig"
cleanup() {
  status=$?
  if [[ $status -ne 0 && -s "$KUBECONFIG_FILE" ]]; then
    log "failure: plugin and controller logs"
    kubectl --kubeconfig "$KUBECONFIG_FILE" -n "$NAMESPACE" logs --all-containers --prefix --tail=200 \
      -l app.kubernetes.io/name=gpu-dra >&2 || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    log "deleting cluster $CLUSTER (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT

log "building $IMAGE"
docker build -f deploy/Dockerfile -t "$IMAGE" .

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER ($NODE_IMAGE)"
  for group in whole mig timeslicing fractional; do mkdir -p "/tmp/gpu-dra-e2e/$group/cdi" "/tmp/gpu-dra-e2e/$group/state"; done
  kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config e2e/kind-config.yaml --wait 120s
fi
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"

log "loading $IMAGE into the nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing the chart (mock NVML)"
helm upgrade --install gpu-dra deploy/helm/gpu-dra \
  --kubeconfig "$KUBECONFIG_FILE" --namespace "$NAMESPACE" --create-namespace \
  --values e2e/values-kind.yaml \
  --set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" \
  --wait --timeout 5m

log "running the e2e tests"
E2E_KUBECONFIG="$KUBECONFIG_FILE" E2E_SCHEDULER_NAME=gpu-dra-scheduler "$PYTEST" -v e2e/tests "$@"
