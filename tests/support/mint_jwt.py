"""RS256 keys and tokens for tests, made at test time with Debian's python3-cryptography.

  keys(dir)                      -> writes dir/jwk-private.pem and dir/jwks.json, returns the kid
  token(dir, claims, kid)        -> a compact RS256 JWT signed with dir/jwk-private.pem
"""
import base64
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _uint(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def keys(directory, kid="kz-test-1"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(os.path.join(directory, "jwk-private.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": _uint(pub.n), "e": _uint(pub.e)}]}
    with open(os.path.join(directory, "jwks.json"), "w") as f:
        json.dump(jwks, f)
    return kid


def token(directory, claims, kid="kz-test-1"):
    with open(os.path.join(directory, "jwk-private.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    sig = key.sign((header + "." + payload).encode(), padding.PKCS1v15(), hashes.SHA256())
    return header + "." + payload + "." + b64url(sig)
