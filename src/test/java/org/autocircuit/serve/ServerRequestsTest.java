package org.autocircuit.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The API's description and listings, and every kind of bad request over real HTTP: each must get its 4xx status
 * and a JSON error naming the field, and must not start a job.
 */
class ServerRequestsTest {

    @TempDir
    static Path tmp;
    static TestServer s;

    @BeforeAll
    static void start() throws IOException {
        // a models folder holding one real model (a copy) and a link that leads out of the folder
        Path models = tmp.resolve("models");
        Path model = models.resolve("induction-2l");
        Files.createDirectories(model);
        for (String f : new String[] {"config.json", "model.safetensors", "vocab.txt"}) {
            Files.copy(Path.of("datasets/models/induction-2l").resolve(f), model.resolve(f));
        }
        Path outside = tmp.resolve("outside/secret-model");
        Files.createDirectories(outside);
        Files.copy(model.resolve("config.json"), outside.resolve("config.json"));
        Files.copy(model.resolve("model.safetensors"), outside.resolve("model.safetensors"));
        Files.createSymbolicLink(models.resolve("escape"), outside);
        ServeConfig config = ServeConfig.defaults(List.of(models), List.of(TestServer.DATASETS), Path.of("."),
            tmp.resolve("state"));
        s = new TestServer(config);
    }

    @AfterAll
    static void stop() {
        s.close();
    }

    @Test
    void openApiDescribesExactlyTheRoutesServed() throws Exception {
        HttpResponse<String> r = s.get("/openapi.json");
        assertEquals(200, r.statusCode());
        JsonNode doc = TestServer.json(r);
        assertTrue(doc.get("openapi").asText().startsWith("3."));
        Set<String> described = new HashSet<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = doc.get("paths").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> p = it.next();
            for (Iterator<String> m = p.getValue().fieldNames(); m.hasNext(); ) {
                described.add(m.next().toUpperCase() + " " + p.getKey());
            }
        }
        Set<String> served = new HashSet<>();
        for (Server.Route route : Server.ROUTES) served.add(route.method() + " " + route.pattern());
        assertEquals(served, described);
        // every route answers something other than 404/405 (so the table and the dispatcher agree)
        for (Server.Route route : Server.ROUTES) {
            String path = route.pattern().replace("{id}", "0123456789abcdef");
            HttpResponse<String> a = s.client.send(s.request(path).method(route.method(),
                route.method().equals("POST") ? HttpRequest.BodyPublishers.ofString("{}")
                    : HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
            assertTrue(a.statusCode() != 405, route + " answered 405");
            if (!route.pattern().contains("{id}")) assertTrue(a.statusCode() != 404, route + " answered 404");
            else assertEquals(404, a.statusCode(), route + ": unknown job id");
            assertTrue(TestServer.json(a).isObject(), route + " answered JSON");
        }
        // every $ref in the description resolves
        List<String> refs = new ArrayList<>();
        collectRefs(doc, refs);
        assertFalse(refs.isEmpty());
        for (String ref : refs) {
            assertTrue(ref.startsWith("#/"), ref);
            assertFalse(doc.at(ref.substring(1)).isMissingNode(), "unresolved " + ref);
        }
    }

    private static void collectRefs(JsonNode n, List<String> out) {
        if (n.isObject() && n.has("$ref")) out.add(n.get("$ref").asText());
        for (JsonNode c : n) collectRefs(c, out);
    }

    @Test
    void listsModelsDatasetsTasksAndAlgorithms() throws Exception {
        JsonNode models = TestServer.json(s.get("/models")).get("models");
        assertEquals(1, models.size(), "the link out of the folder is not listed: " + models);
        JsonNode m = models.get(0);
        assertEquals("induction-2l", m.get("name").asText());
        assertEquals(2, m.get("n_layers").asInt());
        // the component graph of a 2-layer attention-only model with separate Q/K/V, counted independently:
        // sources: embedding + 2 layers × heads; dests per head: Q, K, V; layer-1 dests see embed + layer-0 heads
        int heads = m.get("n_heads").asInt();
        int expected = 3 * heads * 1 + 3 * heads * (1 + heads) + (1 + 2 * heads);
        assertEquals(expected, m.get("edges").get("component").asInt(), m.toString());
        JsonNode datasets = TestServer.json(s.get("/datasets")).get("datasets");
        JsonNode ioi = null;
        for (JsonNode d : datasets) if (d.get("name").asText().equals("ioi-32.json")) ioi = d;
        assertTrue(ioi != null, datasets.toString());
        assertEquals(TestServer.JSON.readTree(Path.of("datasets/ioi-32.json").toFile()).get("prompts").size(),
            ioi.get("prompts").asInt());
        for (JsonNode d : datasets) assertFalse(d.get("name").asText().startsWith("models/"), "model configs are no datasets");
        JsonNode tasks = TestServer.json(s.get("/tasks")).get("tasks");
        boolean inductionRunnable = false;
        for (JsonNode t : tasks) if (t.get("key").asText().equals("induction-2l")) inductionRunnable = t.get("runnable").asBoolean();
        assertTrue(inductionRunnable, tasks.toString());
        assertTrue(TestServer.json(s.get("/algorithms")).get("algorithms").size() > 5);
    }

    /** Posts a job and checks the status and the named field of the error. */
    private static JsonNode refused(String body, int status, String field) throws Exception {
        int before = TestServer.json(s.get("/jobs")).get("jobs").size();
        HttpResponse<String> r = s.post("/jobs", body);
        assertEquals(status, r.statusCode(), body + " -> " + r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        JsonNode e = TestServer.json(r).get("error");
        assertEquals(status, e.get("status").asInt());
        assertEquals(field, e.get("field").isNull() ? null : e.get("field").asText(), r.body());
        assertFalse(e.get("message").asText().isBlank());
        assertEquals(before, TestServer.json(s.get("/jobs")).get("jobs").size(), "a refused request made a job");
        return e;
    }

    @Test
    void badJobRequestsGetA4xxNamingTheField() throws Exception {
        refused("{\"task\": ", 400, "body");
        refused("[1, 2]", 400, "body");
        refused("", 400, "body");
        refused("{\"task\": \"induction-2l\"} trailing", 400, "body");
        refused("{\"tsak\": \"induction-2l\"}", 400, "tsak");
        refused("{\"task\": \"no-such-task\"}", 400, "task");
        refused("{\"task\": \"ioi-component\"}", 400, "task"); // gpt2 small is not installed here
        refused("{\"task\": \"induction-2l\", \"model\": \"induction-2l\"}", 400, "model");
        refused("{\"model\": \"induction-2l\"}", 400, "dataset");
        refused("{\"model\": \"no-such-model\", \"dataset\": \"ioi-32.json\"}", 400, "model");
        refused("{\"model\": \"induction-2l\", \"dataset\": \"nope.json\"}", 400, "dataset");
        refused("{\"model\": \"induction-2l\", \"dataset\": \"models/induction-2l/config.json\"}", 400, "dataset");
        refused("{\"task\": \"induction-2l\", \"algorithms\": [\"EAP\", \"Nope\"]}", 400, "algorithms[1]");
        refused("{\"task\": \"induction-2l\", \"algorithms\": []}", 400, "algorithms");
        refused("{\"task\": \"induction-2l\", \"algorithms\": \"EAP\"}", 400, "algorithms");
        refused("{\"task\": \"induction-2l\", \"ablation\": \"sideways\"}", 400, "ablation");
        refused("{\"task\": \"induction-2l\", \"patch_type\": 3}", 400, "patch_type");
        refused("{\"task\": \"induction-2l\", \"metrics\": [\"Logit Diff\", \"Vibes\"]}", 400, "metrics[1]");
        refused("{\"task\": \"induction-2l\", \"edge_counts\": [1, -2]}", 400, "edge_counts[1]");
        refused("{\"task\": \"induction-2l\", \"edge_counts\": [1.5]}", 400, "edge_counts[0]");
        refused("{\"task\": \"induction-2l\", \"seed\": \"zero\"}", 400, "seed");
        refused("{\"task\": \"induction-2l\", \"device\": \"gpu\"}", 400, "device");
        refused("{\"task\": \"induction-2l\", \"device\": \"cuda:-1\"}", 400, "device");
        // this test JVM has libtorch's CPU build: a CUDA device is refused, saying so, before any model loads
        JsonNode cuda = refused("{\"task\": \"induction-2l\", \"device\": \"cuda:0\"}", 400, "device");
        assertTrue(cuda.get("message").asText().contains("CPU build"), cuda.toString());
        refused("{\"task\": \"induction-2l\", \"dtype\": \"int8\"}", 400, "dtype");
        refused("{\"task\": \"induction-2l\", \"weight_processing\": \"fold\"}", 400, "weight_processing");
        refused("{\"task\": \"induction-2l\", \"gqa_layout\": \"half\"}", 400, "gqa_layout");
        StringBuilder many = new StringBuilder("{\"task\": \"induction-2l\", \"edge_counts\": [0");
        for (int i = 1; i <= 1000; i++) many.append(',').append(i);
        refused(many.append("]}").toString(), 400, "edge_counts");
        String custom = "{\"model\": \"induction-2l\", \"dataset\": \"induction.json\", ";
        refused(custom + "\"batch_size\": 4096, \"batch_count\": 4096}", 400, "batch_count");
        refused(custom + "\"batch_size\": 1000, \"batch_count\": 2}", 400, "batch_count"); // more than the file holds
        refused(custom + "\"batch_size\": 0}", 400, "batch_size");
        refused(custom + "\"graph\": {\"token_circuit\": \"yes\"}}", 400, "graph.token_circuit");
        refused(custom + "\"graph\": {\"layout\": 1}}", 400, "graph.layout");
    }

    @Test
    void pathsCannotLeaveTheConfiguredFolders() throws Exception {
        String ds = ", \"dataset\": \"ioi-32.json\"}";
        for (String bad : new String[] {"../models/induction-2l", "induction-2l/..", "./induction-2l",
                "/etc", Path.of("datasets/models/induction-2l").toAbsolutePath().toString(), "induction-2l//",
                "..\\\\induction-2l", "C:/x", "escape"}) {
            JsonNode e = refused("{\"model\": \"" + bad + "\"" + ds, 400, "model");
            assertFalse(e.get("message").asText().contains(tmp.toString()), "errors do not reveal server paths: " + e);
        }
        assertTrue(refused("{\"model\": \"escape\"" + ds, 400, "model").get("message").asText().contains("link"));
        for (String bad : new String[] {"../datasets/ioi-32.json", "/work/etc/passwd", "models/../ioi-32.json"}) {
            refused("{\"model\": \"induction-2l\", \"dataset\": \"" + bad + "\"}", 400, "dataset");
        }
    }

    @Test
    void oversizedBodiesAreRefusedBeforeReadingThem() throws Exception {
        String pad = "x".repeat(70 * 1024);
        refused("{\"task\": \"induction-2l\", \"pad\": \"" + pad + "\"}", 413, "body");
        // a chunked body (no Content-Length) over the bound is cut off while reading
        byte[] big = ("{\"task\": \"induction-2l\", \"pad\": \"" + pad + "\"}").getBytes(StandardCharsets.UTF_8);
        HttpResponse<String> r = s.client.send(s.request("/jobs").header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(big))).build(),
            HttpResponse.BodyHandlers.ofString());
        assertEquals(413, r.statusCode(), r.body());
        assertEquals(200, s.get("/health").statusCode(), "the server goes on serving");
    }

    @Test
    void wrongRoutesMethodsAndTypes() throws Exception {
        HttpResponse<String> r = s.get("/nothing-here");
        assertEquals(404, r.statusCode());
        assertEquals(404, s.get("/jobs/not-hex!").statusCode());
        assertEquals(404, s.get("/jobs/0123abcd").statusCode());
        assertEquals("id", TestServer.json(s.get("/jobs/0123abcd")).get("error").get("field").asText());
        assertEquals(405, s.delete("/models").statusCode());
        HttpResponse<String> t = s.client.send(s.request("/jobs").header("Content-Type", "text/plain")
            .POST(HttpRequest.BodyPublishers.ofString("{}")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(415, t.statusCode());
        assertEquals("Content-Type", TestServer.json(t).get("error").get("field").asText());
    }

    @Test
    void aTokenIsRequiredOnEveryRequestWhenSet() throws Exception {
        ServeConfig config = TestServer.config(tmp.resolve("state-token")).withToken("s3cret-token");
        try (TestServer t = new TestServer(config)) {
            assertEquals(200, t.get("/models").statusCode());
            t.token = null;
            for (Server.Route route : Server.ROUTES) {
                String path = route.pattern().replace("{id}", "0123456789abcdef");
                HttpResponse<String> a = t.client.send(t.request(path).method(route.method(),
                    HttpRequest.BodyPublishers.ofString("{}")).build(), HttpResponse.BodyHandlers.ofString());
                assertEquals(401, a.statusCode(), route.toString());
                assertEquals("Authorization", TestServer.json(a).get("error").get("field").asText());
                assertTrue(a.headers().firstValue("WWW-Authenticate").orElse("").startsWith("Bearer"));
            }
            t.token = "s3cret-tokeN";
            assertEquals(401, t.get("/jobs").statusCode());
            t.token = "s3cret-token ";
            assertEquals(200, t.get("/jobs").statusCode(), "surrounding blanks are trimmed");
            t.token = null;
            assertEquals(401, t.client.send(t.request("/jobs").header("Authorization", "Basic czNjcmV0LXRva2Vu").GET()
                .build(), HttpResponse.BodyHandlers.ofString()).statusCode());
        }
    }

    @Test
    void listensOnLoopbackOnly() throws Exception {
        assertTrue(s.server.address().getAddress().isLoopbackAddress(), s.server.address().toString());
        // a raw HTTP/1.1 request, as any client would send it
        try (Socket socket = new Socket("127.0.0.1", s.server.address().getPort())) {
            OutputStream out = socket.getOutputStream();
            out.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = socket.getInputStream();
            String answer = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
        }
    }
}
