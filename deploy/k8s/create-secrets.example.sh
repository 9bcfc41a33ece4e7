#!/usr/bin/env bash
# Creates the Secrets deploy/k8s references, with fresh random values, in namespace $NAMESPACE (default reroute).
# Nothing secret is kept in the repository: this is the example of how to make them; a site may make the same
# Secrets from its own secret store (same names and keys) instead.
#
#   deploy/k8s/create-secrets.example.sh                 create them in the cluster kubectl points at
#   deploy/k8s/create-secrets.example.sh --print         print them as YAML instead (for sealed-secrets, SOPS …)
#   TLS_DIR=/path deploy/k8s/create-secrets.example.sh   NATS's certificate from TLS_DIR (ca.crt, tls.crt, tls.key)
#
# Secrets (name: keys):
#   reroute-nats: intake-password risk-password scheduling-password operator-password health-password
#     console-password notifier-password
#   reroute-provisioner: password password-hash (the NATS user `provisioner`, which alone may create and update the
#     streams: the Job reroute-migrate reads the password, the NATS pods only its bcrypt hash)
#   reroute-postgres: owner-password intake-password risk-password scheduling-password (the roles
#     deploy/postgres/10-reroute-roles.sh creates: run it against your database with these passwords)
#   reroute-intake-keys: encryption-key matching-key (back them up with the database: without them no stored
#     referral can be read or matched)
#   reroute-console: spans-token (the services send their spans to the console's span store with it; without the
#     Secret they write span files in their pods instead, which no console reads)
#   reroute-nats-tls: ca.crt tls.crt tls.key (NATS's certificate; made self-signed here unless TLS_DIR is given: it
#     must name nats, nats.<namespace>.svc and *.nats-headless(.<namespace>.svc), for server and client use)
#   reroute-smtp: user password (optional, not made here: the notifier's log-in at your mail relay, if it asks for
#     one; make it with `kubectl create secret generic reroute-smtp --from-literal=user=… --from-literal=password=…`)
#
# A Secret that exists already is kept as it is (never a key replaced), so running this again after an upgrade makes
# only the Secrets the new version added (reroute-provisioner, for an install from before it).
set -euo pipefail
NAMESPACE=${NAMESPACE:-reroute}
KUBECTL=${KUBECTL:-kubectl}
TLS_DIR=${TLS_DIR:+$(CDPATH='' cd -- "$TLS_DIR" >/dev/null && pwd)}  # absolute before the cd below
cd "$(dirname "$0")/../.."                  # the checkout's root: the hash and the certificates come from its code
PYTHON=${PYTHON:-$(command -v .venv/bin/python || command -v python3)}
print=false
[ "${1:-}" = "--print" ] && print=true

password() { "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))'; }
bcrypt_hash() {  # of the password on stdin, as the NATS server checks it (shared/nats_auth.py)
    "$PYTHON" -c 'import sys; from shared.nats_auth import hash_password; print(hash_password(sys.stdin.read()))'
}
fernet_key() { "$PYTHON" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'; }

secret() {  # secret generic NAME ARGS…: create it unless it exists, or print it with --print
    if $print; then
        "$KUBECTL" create secret "$@" --namespace "$NAMESPACE" --dry-run=client -o yaml
        echo "---"
    elif "$KUBECTL" get secret "$2" --namespace "$NAMESPACE" >/dev/null 2>&1; then
        echo "secret/$2 exists: kept" >&2
    else
        "$KUBECTL" create secret "$@" --namespace "$NAMESPACE"
    fi
}

# First, before anything is made or printed: the one value that needs the project's code (bcrypt).
provisioner_password=$(password)
provisioner_hash=$(printf %s "$provisioner_password" | bcrypt_hash) || provisioner_hash=""
if [[ $provisioner_hash != '$2'* ]]; then
    echo "could not make the provisioner's bcrypt hash with $PYTHON (make .venv/.installed-stamp, or PYTHON=…)" >&2
    exit 1
fi
secret generic reroute-nats \
    --from-literal=intake-password="$(password)" --from-literal=risk-password="$(password)" \
    --from-literal=scheduling-password="$(password)" --from-literal=operator-password="$(password)" \
    --from-literal=health-password="$(password)" --from-literal=console-password="$(password)" \
    --from-literal=notifier-password="$(password)"
secret generic reroute-provisioner --from-literal=password="$provisioner_password" \
    --from-literal=password-hash="$provisioner_hash"
secret generic reroute-postgres \
    --from-literal=owner-password="$(password)" --from-literal=intake-password="$(password)" \
    --from-literal=risk-password="$(password)" --from-literal=scheduling-password="$(password)"
secret generic reroute-intake-keys --from-literal=encryption-key="$(fernet_key)" --from-literal=matching-key="$(fernet_key)"
secret generic reroute-console --from-literal=spans-token="$(password)"

tls_dir=${TLS_DIR:-}
if [ -z "$tls_dir" ]; then
    tls_dir=$(mktemp -d)
    trap 'rm -rf "$tls_dir"' EXIT
    "$PYTHON" -m apps.container.certs "$tls_dir" --name nats --name "nats.$NAMESPACE.svc" --name '*.nats-headless' \
        --name "*.nats-headless.$NAMESPACE.svc" >&2
    mv "$tls_dir/server.crt" "$tls_dir/tls.crt"
    mv "$tls_dir/server.key" "$tls_dir/tls.key"
fi
secret generic reroute-nats-tls --from-file=ca.crt="$tls_dir/ca.crt" --from-file=tls.crt="$tls_dir/tls.crt" \
    --from-file=tls.key="$tls_dir/tls.key"
