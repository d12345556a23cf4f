package org.autocircuit.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.autocircuit.algorithms.PruneAlgorithms;
import org.autocircuit.algorithms.RegisteredAlgorithm;
import org.autocircuit.report.DiscoveryResult;
import org.autocircuit.report.HtmlReport;
import org.autocircuit.tasks.TaskPaths;

/**
 * {@code autocircuit serve}: the HTTP/JSON API (docs/server.md; {@code GET /openapi.json} describes every route in
 * {@link #ROUTES}).
 *
 * <p>Built on the JDK's own HTTP server ({@code com.sun.net.httpserver}), so the library jar pulls in no web
 * framework for the many callers that never serve: it handles plain HTTP/1.1 with keep-alive, chunked responses
 * (server-sent events) and a thread pool of our choosing, which is all this API needs. Every request is checked in
 * one place ({@link #handle}): the bearer token when one is set, the route and method, the body size; every refusal
 * is a JSON error naming the field at fault.
 */
public final class Server implements AutoCloseable {

    /** A route: method and path pattern ({@code {id}} matches one path segment). */
    public record Route(String method, String pattern) {}

    /** Every route the server answers; the OpenAPI description must describe exactly these. */
    public static final List<Route> ROUTES = List.of(
        new Route("GET", "/openapi.json"),
        new Route("GET", "/health"),
        new Route("GET", "/models"),
        new Route("GET", "/datasets"),
        new Route("GET", "/tasks"),
        new Route("GET", "/algorithms"),
        new Route("GET", "/jobs"),
        new Route("POST", "/jobs"),
        new Route("GET", "/jobs/{id}"),
        new Route("DELETE", "/jobs/{id}"),
        new Route("GET", "/jobs/{id}/events"),
        new Route("GET", "/jobs/{id}/result"),
        new Route("GET", "/jobs/{id}/report"));

    private static final int HTTP_THREADS = 32;
    private static final long KEEPALIVE_MILLIS = 15_000;

    private final ServeConfig config;
    private final ObjectMapper json = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private final Catalog catalog;
    private final ModelCache models;
    private final JobStore store;
    private final JobManager jobs;
    private final HttpServer http;
    private final ThreadPoolExecutor httpThreads;
    private final Semaphore streams;
    private final byte[] token;
    private final byte[] openApi;

    private Server(ServeConfig config) throws IOException {
        this.config = config;
        TaskPaths paths = TaskPaths.under(config.taskHome());
        this.catalog = new Catalog(config.modelRoots(), config.datasetRoots(), paths);
        this.models = new ModelCache(paths, config.maxLoadedModels(), config.maxModelBytes());
        this.store = new JobStore(config.stateDir());
        this.jobs = new JobManager(store, models, catalog, config.maxJobs(), config.maxQueued());
        this.streams = new Semaphore(config.maxStreams());
        this.token = config.token() == null ? null : config.token().getBytes(StandardCharsets.UTF_8);
        try (InputStream in = Server.class.getResourceAsStream("openapi.json")) {
            if (in == null) throw new IllegalStateException("openapi.json is missing from the classpath");
            this.openApi = in.readAllBytes();
        }
        AtomicInteger n = new AtomicInteger();
        this.httpThreads = new ThreadPoolExecutor(HTTP_THREADS, HTTP_THREADS, 60, TimeUnit.SECONDS,
            new ArrayBlockingQueue<>(1024), r -> {
                Thread t = new Thread(r, "autocircuit-http-" + n.incrementAndGet());
                t.setDaemon(true);
                return t;
            });
        // The JDK server writes a response's headers and body separately; with Nagle's algorithm on, the body then
        // waits for the client's delayed ACK (~40 ms a call). The property is read when the server class loads.
        if (System.getProperty("sun.net.httpserver.nodelay") == null) {
            System.setProperty("sun.net.httpserver.nodelay", "true");
        }
        this.http = HttpServer.create(new InetSocketAddress(config.bind(), config.port()), 64);
        http.setExecutor(httpThreads);
        http.createContext("/", this::handle);
    }

    /**
     * Starts a server: reads the state folder back (marking jobs the last server left unfinished as failed), binds,
     * and serves until {@link #close()}.
     *
     * @throws IllegalArgumentException for a missing folder or a bad setting, naming it
     * @throws IOException              if the address cannot be bound or the state folder written
     */
    public static Server start(ServeConfig config) throws IOException {
        Server s = new Server(config);
        s.http.start();
        return s;
    }

    /** The address it listens on (with the port chosen when the config said 0). */
    public InetSocketAddress address() {
        return http.getAddress();
    }

    public URI uri() {
        InetSocketAddress a = address();
        return URI.create("http://" + a.getHostString() + ":" + a.getPort());
    }

    /**
     * Stops: refuses new connections, cancels queued and running jobs (waiting for them to stop at their next
     * step, at most 30 s), and closes every loaded model.
     */
    @Override
    public void close() {
        http.stop(0);
        jobs.shutdown(30);
        models.close();
        httpThreads.shutdownNow();
    }

    // ---------------------------------------------------------------- dispatch

    private void handle(HttpExchange ex) {
        try (ex) {
            try {
                authorize(ex);
                String path = ex.getRequestURI().getRawPath();
                String method = ex.getRequestMethod();
                List<String> params = new ArrayList<>();
                Route route = match(method, path, params);
                dispatch(ex, route, params);
            } catch (ApiException e) {
                drainQuietly(ex);
                sendError(ex, e.status(), e.field(), e.getMessage());
            } catch (RuntimeException e) {
                drainQuietly(ex);
                sendError(ex, 500, null, "internal error: " + e);
            }
        } catch (IOException e) {
            // the client went away; nothing to answer
        }
    }

    private void authorize(HttpExchange ex) {
        if (token == null) return;
        String h = ex.getRequestHeaders().getFirst("Authorization");
        byte[] given = h != null && h.startsWith("Bearer ")
            ? h.substring("Bearer ".length()).trim().getBytes(StandardCharsets.UTF_8) : new byte[0];
        if (!MessageDigest.isEqual(given, token)) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer realm=\"autocircuit\"");
            throw new ApiException(401, "Authorization", h == null ? "this server needs 'Authorization: Bearer <token>'"
                : "the bearer token is wrong");
        }
    }

    /** The route for a path and method; 404 for no such path, 405 for a path without that method. */
    static Route match(String method, String path, List<String> params) {
        String[] parts = path.split("/", -1);
        boolean pathKnown = false;
        for (Route r : ROUTES) {
            String[] pat = r.pattern().split("/", -1);
            if (pat.length != parts.length) continue;
            List<String> got = new ArrayList<>();
            boolean ok = true;
            for (int i = 0; i < pat.length && ok; i++) {
                if (pat[i].startsWith("{")) {
                    if (!parts[i].matches("[0-9a-f]{1,64}")) ok = false;
                    else got.add(parts[i]);
                } else if (!pat[i].equals(parts[i])) {
                    ok = false;
                }
            }
            if (!ok) continue;
            pathKnown = true;
            if (r.method().equals(method)) {
                params.addAll(got);
                return r;
            }
        }
        if (pathKnown) throw new ApiException(405, null, method + " is not allowed on " + path);
        throw ApiException.notFound(null, "no such resource: " + path + " (GET /openapi.json lists the API)");
    }

    private void dispatch(HttpExchange ex, Route route, List<String> params) throws IOException {
        switch (route.method() + " " + route.pattern()) {
            case "GET /openapi.json" -> send(ex, 200, "application/json", openApi);
            case "GET /health" -> sendJson(ex, 200, health());
            case "GET /models" -> sendJson(ex, 200, Map.of("models", catalog.models()));
            case "GET /datasets" -> sendJson(ex, 200, Map.of("datasets", catalog.datasets()));
            case "GET /tasks" -> sendJson(ex, 200, Map.of("tasks", catalog.tasks()));
            case "GET /algorithms" -> sendJson(ex, 200, Map.of("algorithms", algorithms()));
            case "GET /jobs" -> {
                List<Object> out = new ArrayList<>();
                for (Job j : jobs.list()) out.add(j.toJson(false));
                sendJson(ex, 200, Map.of("jobs", out));
            }
            case "POST /jobs" -> {
                JsonNode body = readJson(ex);
                Job job = jobs.submit(JobRequest.parse(body, catalog, config));
                ex.getResponseHeaders().set("Location", "/jobs/" + job.id());
                sendJson(ex, 202, job.toJson(true));
            }
            case "GET /jobs/{id}" -> sendJson(ex, 200, job(params.get(0)).toJson(true));
            case "DELETE /jobs/{id}" -> {
                Job job = job(params.get(0));
                if (jobs.cancelOrDelete(job)) {
                    sendJson(ex, 202, job.toJson(false));
                } else {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("id", job.id());
                    m.put("deleted", true);
                    sendJson(ex, 200, m);
                }
            }
            case "GET /jobs/{id}/events" -> stream(ex, job(params.get(0)));
            case "GET /jobs/{id}/result" -> {
                Job job = finished(params.get(0));
                send(ex, 200, "application/json", Files.readAllBytes(store.resultFile(job.id())));
            }
            case "GET /jobs/{id}/report" -> {
                Job job = finished(params.get(0));
                DiscoveryResult r = DiscoveryResult.read(store.resultFile(job.id()));
                send(ex, 200, "text/html; charset=utf-8",
                    HtmlReport.render(r, HtmlReport.Options.defaults()).getBytes(StandardCharsets.UTF_8));
            }
            default -> throw new IllegalStateException("route without a handler: " + route);
        }
    }

    private Map<String, Object> health() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", "ok");
        m.put("jobs", jobs.counts());
        m.put("running", jobs.running());
        m.put("max_jobs", config.maxJobs());
        m.put("loaded_models", models.describe());
        m.put("max_loaded_models", config.maxLoadedModels());
        Map<String, Object> limits = new LinkedHashMap<>();
        limits.put("max_body_bytes", config.maxBodyBytes());
        limits.put("max_edge_counts", config.maxEdgeCounts());
        limits.put("max_algorithms", config.maxAlgorithms());
        limits.put("max_prompts_per_split", config.maxPrompts());
        limits.put("max_queued", config.maxQueued());
        limits.put("max_event_streams", config.maxStreams());
        m.put("limits", limits);
        return m;
    }

    private static List<Map<String, Object>> algorithms() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (RegisteredAlgorithm a : PruneAlgorithms.ALL) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("key", a.key());
            m.put("short_name", a.shortName());
            m.put("name", a.name());
            m.put("parameters", a.parameters());
            out.add(m);
        }
        return out;
    }

    private Job job(String id) {
        Job j = jobs.get(id);
        if (j == null) throw ApiException.notFound("id", "no job '" + id + "' (GET /jobs lists them)");
        return j;
    }

    private Job finished(String id) {
        Job j = job(id);
        if (j.state() != Job.State.SUCCEEDED) {
            throw new ApiException(409, "id", "job " + id + " is " + j.state().json()
                + "; its result exists once it has succeeded");
        }
        return j;
    }

    // ---------------------------------------------------------------- event stream

    /**
     * Server-sent events: a {@code progress} event with the job's JSON whenever it changes (at most every 200 ms),
     * a comment every 15 s to keep proxies from closing an idle stream, and an {@code end} event with the final
     * state, after which the stream closes.
     */
    private void stream(HttpExchange ex, Job job) throws IOException {
        if (!streams.tryAcquire()) {
            throw new ApiException(429, null, config.maxStreams() + " event streams are open; poll GET /jobs/{id} instead");
        }
        try {
            ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
            ex.getResponseHeaders().set("Cache-Control", "no-cache");
            ex.sendResponseHeaders(200, 0);
            OutputStream out = ex.getResponseBody();
            long seen = -1;
            long lastWrite = System.currentTimeMillis();
            while (true) {
                long v = job.version();
                boolean done = job.state().isFinal();
                if (v != seen) {
                    seen = v;
                    String data = json.writeValueAsString(job.toJson(false));
                    out.write(("event: " + (done ? "end" : "progress") + "\ndata: " + data + "\n\n")
                        .getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    lastWrite = System.currentTimeMillis();
                    if (done) return;
                    Thread.sleep(200);
                } else if (System.currentTimeMillis() - lastWrite >= KEEPALIVE_MILLIS) {
                    out.write(": keep-alive\n\n".getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    lastWrite = System.currentTimeMillis();
                }
                job.awaitChange(seen, KEEPALIVE_MILLIS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            streams.release();
        }
    }

    // ---------------------------------------------------------------- bodies

    private JsonNode readJson(HttpExchange ex) throws IOException {
        String type = ex.getRequestHeaders().getFirst("Content-Type");
        if (type != null && !type.toLowerCase(java.util.Locale.ROOT).startsWith("application/json")) {
            throw new ApiException(415, "Content-Type", "the body must be application/json, got " + type);
        }
        String length = ex.getRequestHeaders().getFirst("Content-Length");
        if (length != null) {
            long n;
            try {
                n = Long.parseLong(length.trim());
            } catch (NumberFormatException e) {
                throw ApiException.badRequest("Content-Length", "not a number: " + length);
            }
            if (n > config.maxBodyBytes()) {
                throw new ApiException(413, "body", "the body is " + n + " bytes; at most " + config.maxBodyBytes());
            }
        }
        byte[] body = readAtMost(ex.getRequestBody(), config.maxBodyBytes());
        if (body == null) {
            throw new ApiException(413, "body", "the body is larger than " + config.maxBodyBytes() + " bytes");
        }
        if (body.length == 0) throw ApiException.badRequest("body", "a JSON object is required");
        try {
            return json.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiException.badRequest("body", "not valid JSON: " + e.getOriginalMessage() + " (line "
                + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")");
        }
    }

    /** The bytes of the stream, or null when there are more than {@code max}. */
    private static byte[] readAtMost(InputStream in, int max) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        int n;
        while ((n = in.read(buf)) >= 0) {
            out.write(buf, 0, n);
            if (out.size() > max) return null;
        }
        return out.toByteArray();
    }

    /**
     * Reads what is left of a refused request's body (up to a bound) so the connection can be reused; a larger body
     * is left, and the JDK server closes that connection.
     */
    private void drainQuietly(HttpExchange ex) {
        try {
            InputStream in = ex.getRequestBody();
            byte[] buf = new byte[8192];
            long left = 4L * config.maxBodyBytes();
            int n;
            while (left > 0 && (n = in.read(buf)) >= 0) left -= n;
        } catch (IOException ignored) {
            // the connection is closed anyway
        }
    }

    private void sendJson(HttpExchange ex, int status, Object body) throws IOException {
        send(ex, status, "application/json", json.writerWithDefaultPrettyPrinter().writeValueAsBytes(body));
    }

    private void sendError(HttpExchange ex, int status, String field, String message) throws IOException {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("status", status);
        e.put("field", field);
        e.put("message", message);
        sendJson(ex, status, Map.of("error", e));
    }

    private static void send(HttpExchange ex, int status, String type, byte[] body) throws IOException {
        ex.getResponseHeaders().set("Content-Type", type);
        ex.getResponseHeaders().set("X-Content-Type-Options", "nosniff");
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        if (body.length > 0) {
            try (OutputStream out = ex.getResponseBody()) {
                out.write(body);
            }
        }
    }
}
