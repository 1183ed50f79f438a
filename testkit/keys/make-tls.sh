#!/usr/bin/env bash
# Makes the TLS test certificates of this folder with openssl: a CA, a server certificate for
# 127.0.0.1 and localhost, and client certificates for mutual TLS (RFC 8705). They are valid
# for 100 years; the CA's key is thrown away, so running this again replaces every file it
# made. Tests only: the keys are public.
#
#   tls-ca.pem                            the CA (CN tower-oauth2 test TLS CA)
#   tls-server.pem, tls-server-key.pem    issued by it: 127.0.0.1, ::1 and localhost
#   mtls-client.pem, mtls-client-key.pem  issued by it: CN interop-mtls-client (EC P-256)
#   mtls-client-next.pem, mtls-client-next-key.pem
#                                         issued by it: CN interop-mtls-client again, another key
#                                         and serial: the certificate a rotation brings
#   mtls-other.pem, mtls-other-key.pem    issued by it: CN interop-other-client, the wrong one
#   mtls-self-signed.pem, mtls-self-signed-key.pem
#                                         self-signed: CN interop-self-signed-client (RSA 2048)
set -euo pipefail
cd "$(dirname "$0")"
days=36500
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca-key.pem"
openssl req -x509 -new -key "$work/ca-key.pem" -days "$days" -subj "/CN=tower-oauth2 test TLS CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out tls-ca.pem

# issue NAME SUBJECT EXTENSIONS: a P-256 key and a certificate the CA signs.
issue() {
    openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1-key.pem"
    openssl req -new -key "$1-key.pem" -subj "$2" -out "$work/$1.csr"
    printf '%s\n' "$3" >"$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA tls-ca.pem -CAkey "$work/ca-key.pem" \
        -CAcreateserial -days "$days" -extfile "$work/$1.ext" -out "$1.pem"
}
issue tls-server "/CN=127.0.0.1" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
client_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
issue mtls-client "/CN=interop-mtls-client" "$client_ext"
issue mtls-client-next "/CN=interop-mtls-client" "$client_ext"
issue mtls-other "/CN=interop-other-client" "$client_ext"

openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out mtls-self-signed-key.pem
openssl req -x509 -new -key mtls-self-signed-key.pem -days "$days" \
    -subj "/CN=interop-self-signed-client" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=clientAuth" \
    -out mtls-self-signed.pem
rm -f tls-ca.srl
