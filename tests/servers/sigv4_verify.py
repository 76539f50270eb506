"""SigV4 (AWS4-HMAC-SHA256) verification as an AWS endpoint does it, for the test servers.

Written from AWS's documentation ("Create a signed AWS API request"), independently of
kz's C++ signer (common/src/sigv4.cpp), and checked against the published vectors in
../shared/vectors/sigv4 by tests/servers/test_sigv4_verify.py. A server knows its own
service, so unlike kz it does not have to guess how the canonical URI was built:
S3 encodes the path once and never normalises it; every other service encodes the path
as received again and removes dot segments.
"""
import datetime
import hashlib
import hmac
import re
import urllib.parse

EMPTY_HASH = hashlib.sha256(b"").hexdigest()
MAX_SKEW = 15 * 60


class SigError(Exception):
    """Why a request was refused: code (AWS's error name) and message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def uri_encode(s, keep_slash):
    if isinstance(s, str):
        s = s.encode("utf-8", "surrogateescape")
    out = []
    for b in s:
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-._~" or (keep_slash and c == "/")):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def unquote_bytes(s):
    return urllib.parse.unquote_to_bytes(s)


def normalize(path):
    segs = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    out = "/" + "/".join(segs)
    last = path.rsplit("/", 1)[-1]
    if segs and (path.endswith("/") or last in (".", "..")):
        out += "/"
    return out


def canonical_uri(path, s3):
    if not path:
        path = "/"
    if s3:
        return uri_encode(unquote_bytes(path), True)
    return uri_encode(normalize(path), True)


def canonical_query(query):
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        if unquote_bytes(k) == b"X-Amz-Signature":
            continue
        pairs.append((uri_encode(unquote_bytes(k), False), uri_encode(unquote_bytes(v), False)))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def canonical_headers(headers, names):
    lines = []
    for n in names:
        values = [v for (k, v) in headers if k.lower() == n]
        if not values:
            raise SigError("InvalidSignatureException", "signed header %s is missing" % n)
        lines.append("%s:%s\n" % (n, ",".join(" ".join(v.split()) for v in values)))
    return "".join(lines)


def signing_key(secret, date, region, service):
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$")


def parse(method, target, headers):
    """headers: [(name, value)] as received. Returns a dict describing the signature."""
    path, _, query = target.partition("?")
    params = {}
    for part in query.split("&"):
        if part:
            k, _, v = part.partition("=")
            params.setdefault(urllib.parse.unquote(k), urllib.parse.unquote(v))
    auths = [v for (k, v) in headers if k.lower() == "authorization"]
    if auths:
        m = AUTH_RE.match(auths[0].strip())
        if len(auths) != 1 or not m:
            raise SigError("IncompleteSignatureException", "malformed Authorization header")
        credential, signed, signature = m.groups()
        dates = [v for (k, v) in headers if k.lower() == "x-amz-date"]
        amz_date = dates[0].strip() if dates else ""
        presigned = False
    elif params.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256":
        credential = params.get("X-Amz-Credential", "")
        signed = params.get("X-Amz-SignedHeaders", "")
        signature = params.get("X-Amz-Signature", "")
        amz_date = params.get("X-Amz-Date", "")
        presigned = True
    else:
        raise SigError("MissingAuthenticationTokenException", "no SigV4 signature")
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SigError("IncompleteSignatureException", "malformed Credential")
    return {"method": method, "path": path, "query": query, "headers": headers, "access_key": parts[0],
            "date": parts[1], "region": parts[2], "service": parts[3], "signed": signed.split(";"),
            "signature": signature, "amz_date": amz_date, "presigned": presigned, "params": params}


def payload_hash(p, body, s3):
    sha = [v for (k, v) in p["headers"] if k.lower() == "x-amz-content-sha256"]
    if sha:
        value = sha[0].strip()
        if value not in ("UNSIGNED-PAYLOAD",) and not value.startswith("STREAMING-"):
            if value != hashlib.sha256(body).hexdigest():
                raise SigError("XAmzContentSHA256Mismatch", "x-amz-content-sha256 does not match the body")
        return value
    if s3 and p["presigned"]:
        return "UNSIGNED-PAYLOAD"
    if s3:
        raise SigError("InvalidRequest", "missing x-amz-content-sha256")
    return hashlib.sha256(body).hexdigest()


def string_to_sign(p, creq):
    scope = "%s/%s/%s/aws4_request" % (p["date"], p["region"], p["service"])
    return "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (p["amz_date"], scope, hashlib.sha256(creq.encode("utf-8", "surrogateescape")).hexdigest())


def canonical_request(p, payload, s3, normalize_path=True):
    uri = canonical_uri(p["path"], s3) if (s3 or normalize_path) else uri_encode(p["path"] or "/", True)
    return "\n".join([p["method"], uri, canonical_query(p["query"]),
                      canonical_headers(p["headers"], p["signed"]), ";".join(p["signed"]), payload])


def verify(p, body, secret, now=None, s3=None, check_clock=True):
    """Raises SigError unless the request is signed by `secret` exactly as AWS checks it."""
    if s3 is None:
        s3 = p["service"] == "s3"
    if "host" not in p["signed"]:
        raise SigError("InvalidSignatureException", "host must be signed")
    try:
        when = datetime.datetime.strptime(p["amz_date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise SigError("IncompleteSignatureException", "X-Amz-Date is missing or malformed")
    if p["amz_date"][:8] != p["date"]:
        raise SigError("InvalidSignatureException", "credential date does not match X-Amz-Date")
    if check_clock:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        if abs((now - when).total_seconds()) > MAX_SKEW and not p["presigned"]:
            raise SigError("RequestTimeTooSkewed", "the request's date is too far from the server's clock")
        if p["presigned"]:
            expires = int(p["params"].get("X-Amz-Expires", "0") or 0)
            if (now - when).total_seconds() > expires:
                raise SigError("AccessDenied", "request has expired")
    creq = canonical_request(p, payload_hash(p, body, s3), s3)
    sts = string_to_sign(p, creq)
    want = hmac.new(signing_key(secret, p["date"], p["region"], p["service"]), sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, p["signature"]):
        raise SigError("SignatureDoesNotMatch" if s3 else "InvalidSignatureException",
                       "The request signature we calculated does not match the signature you provided.")
    return creq
