// The tools' descriptions and input schemas (what tools/list shows the model).
#include "mcp/mcp_tools.h"

namespace kz::mcp {

const nlohmann::json& McpTools::definitions() {
  static const nlohmann::json tools = nlohmann::json::parse(R"json([
  {
    "name": "resolve",
    "title": "Resolve a secret to a token",
    "description": "Get an opaque token (KZ_TOK_...) that stands for a secret. Put the token where the credential goes in a fetch call (a header such as Authorization: Bearer <token>, a Basic credential, or the body): kz swaps it for the real value when the request goes to one of the hosts the secret is bound to. The result lists those hosts and when the token expires. The secret's value is never returned unless policy allows revealing it.",
    "inputSchema": {
      "type": "object",
      "properties": {
        "name": {"type": "string", "description": "The secret's name, e.g. GITHUB_TOKEN"},
        "ref": {"type": "string", "description": "Or the secret's provider reference, e.g. secret/data/prod/db#password"}
      },
      "additionalProperties": false
    },
    "annotations": {"readOnlyHint": true, "openWorldHint": false}
  },
  {
    "name": "fetch",
    "title": "Make an authenticated HTTPS request",
    "description": "kz makes an HTTPS request for you. Tokens from resolve in headers or body are replaced by the real credential, only for hosts the secret is bound to. Redirects are followed only to bound hosts. Returns the status, a safe subset of response headers and the body (text, or base64 for binary; capped, with truncation marked). Any credential value echoed in the response is replaced by its token. With sign, kz signs the request as AWS SigV4 with a key it never shows.",
    "inputSchema": {
      "type": "object",
      "properties": {
        "url": {"type": "string", "description": "An https:// URL"},
        "method": {"type": "string", "description": "HTTP method (default GET)", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
        "headers": {"type": "object", "description": "Request headers", "additionalProperties": {"type": "string"}},
        "body": {"type": "string", "description": "Request body (text)"},
        "sign": {
          "type": "object",
          "description": "Sign the request with AWS Signature Version 4 using a secret declared with sign = sigv4 (an AWS secret access key). kz adds X-Amz-Date, X-Amz-Content-Sha256, the session token and Authorization itself; do not set them. Only for the hosts, services and regions the secret is bound to.",
          "properties": {
            "secret": {"type": "string", "description": "The signing secret's name, e.g. AWS_SECRET_ACCESS_KEY"},
            "service": {"type": "string", "description": "The AWS service of the credential scope, e.g. s3, secretsmanager, sts"},
            "region": {"type": "string", "description": "The AWS region of the credential scope, e.g. us-east-1"}
          },
          "required": ["secret", "service", "region"],
          "additionalProperties": false
        },
        "timeout_ms": {"type": "integer", "minimum": 1, "description": "Timeout for the whole request, redirects included"}
      },
      "required": ["url"],
      "additionalProperties": false
    },
    "annotations": {"readOnlyHint": false, "destructiveHint": true, "openWorldHint": true}
  }
])json");
  return tools;
}

bool McpTools::known(std::string_view name) { return name == "resolve" || name == "fetch"; }

}  // namespace kz::mcp
