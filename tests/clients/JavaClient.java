// A real Java (17) HTTPS client for the blind-mode end-to-end tests. Java's TLS is pure
// Java, so kz's shim cannot reach it: under `kz run --blind` its connections go to kz's
// fallback proxy, and it trusts the run's CA only through the trust store that
// JAVA_TOOL_OPTIONS names (-Djavax.net.ssl.trustStore=...).
//
//   java JavaClient.java URL ENVVAR [BODY]          (single-file source launcher)
//   javac -d OUT JavaClient.java && java -cp OUT JavaClient URL ENVVAR [BODY]
//
// Sends one request with java.net.http.HttpClient (GET, or POST with BODY as
// application/json) carrying "Authorization: Bearer $ENVVAR". Prints "status N" and the
// response body on stdout; exits 0 on any HTTP response, 1 on a connection/TLS error
// (printed on stderr), 2 on bad usage. Default SSLContext and HTTP version preference
// (HTTP/2 offered by ALPN, HTTP/1.1 when the server picks it; KZ_CLIENT_HTTP1=1 offers
// HTTP/1.1 only, for servers that select h2 but do not speak it); no proxy.
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class JavaClient {
    private static final Duration TIMEOUT = Duration.ofSeconds(20);

    public static void main(String[] args) {
        if (args.length < 2 || args.length > 3) {
            usage("wrong arguments");
        }
        String value = System.getenv(args[1]);
        if (value == null) {
            usage(args[1] + " is not set");
        }
        HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(args[0]))
                .timeout(TIMEOUT)
                .header("Authorization", "Bearer " + value);
        if (args.length == 3) {
            req.header("Content-Type", "application/json")
               .POST(HttpRequest.BodyPublishers.ofString(args[2]));
        } else {
            req.GET();
        }
        // NO_PROXY: the request must go where the URL says (kz's redirector, not a proxy
        // setting, is what sends it to kz).
        HttpClient.Builder builder = HttpClient.newBuilder()
                .connectTimeout(TIMEOUT)
                .proxy(HttpClient.Builder.NO_PROXY);
        if ("1".equals(System.getenv("KZ_CLIENT_HTTP1"))) {
            builder.version(HttpClient.Version.HTTP_1_1);
        }
        HttpClient client = builder.build();
        try {
            HttpResponse<String> res = client.send(req.build(), HttpResponse.BodyHandlers.ofString());
            System.out.print("status " + res.statusCode() + "\n" + res.body());
            System.out.flush();
            System.exit(0);
        } catch (IOException e) {
            System.err.println("error: " + describe(e));
            System.exit(1);
        } catch (InterruptedException e) {
            System.err.println("error: interrupted");
            System.exit(1);
        }
    }

    // The exception and its causes: the TLS reason (e.g. "PKIX path building failed")
    // is usually a cause of the IOException that send() throws.
    private static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (int depth = 0; t != null && depth < 6; t = t.getCause(), depth++) {
            if (depth > 0) {
                sb.append(" <- ");
            }
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
        }
        return sb.toString();
    }

    private static void usage(String msg) {
        System.err.println("JavaClient: " + msg + "\nusage: java JavaClient.java URL ENVVAR [BODY]");
        System.exit(2);
    }
}
