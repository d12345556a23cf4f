package org.autocircuit.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;

/**
 * A server on a free loopback port over the repository's bundled models and datasets, and a real HTTP client
 * (java.net.http) talking to it.
 */
final class TestServer implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path MODELS = Path.of("datasets/models");
    static final Path DATASETS = Path.of("datasets");

    final Server server;
    final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    String token;

    TestServer(ServeConfig config) throws IOException {
        this.server = Server.start(config.withPort(0));
        this.token = config.token();
    }

    static ServeConfig config(Path state) {
        return ServeConfig.defaults(List.of(MODELS), List.of(DATASETS), Path.of("."), state);
    }

    URI uri(String path) {
        return server.uri().resolve(path);
    }

    HttpRequest.Builder request(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(30));
        if (token != null) b.header("Authorization", "Bearer " + token);
        return b;
    }

    HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return client.send(request(path).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
        return client.send(request(path).header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> delete(String path) throws IOException, InterruptedException {
        return client.send(request(path).DELETE().build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode json(HttpResponse<String> r) throws IOException {
        return JSON.readTree(r.body());
    }

    /** Submits a job and returns its id (failing on anything but 202). */
    String submit(String body) throws IOException, InterruptedException {
        HttpResponse<String> r = post("/jobs", body);
        if (r.statusCode() != 202) throw new AssertionError("submit answered " + r.statusCode() + ": " + r.body());
        return json(r).get("id").asText();
    }

    /** Polls a job until its state is one of {@code states}; returns its JSON. */
    JsonNode await(String id, Set<String> states, Duration timeout) throws IOException, InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        JsonNode j = null;
        while (System.nanoTime() < end) {
            HttpResponse<String> r = get("/jobs/" + id);
            if (r.statusCode() != 200) throw new AssertionError("GET /jobs/" + id + " answered " + r.statusCode()
                + ": " + r.body());
            j = json(r);
            if (states.contains(j.get("state").asText())) return j;
            Thread.sleep(25);
        }
        throw new AssertionError("job " + id + " did not reach " + states + " within " + timeout + ": " + j);
    }

    JsonNode awaitFinal(String id) throws IOException, InterruptedException {
        return await(id, Set.of("succeeded", "failed", "cancelled"), Duration.ofSeconds(120));
    }

    /** This process's resident set size in bytes (Linux), or -1. */
    static long rssBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    @Override
    public void close() {
        server.close();
    }
}
