package org.autocircuit.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.report.DiscoveryResult;
import org.autocircuit.util.AtomicFiles;

/**
 * The state folder: {@code jobs/<id>/job.json} (request, state, times, error) and, for a job that succeeded,
 * {@code jobs/<id>/result.json} (the discover result schema). Both are written atomically (temp file, then rename),
 * the result before the record that says the job succeeded, so a record never points at a missing or half-written
 * result. On start, {@link #restore} reads every record back; a job that was queued or running when the server
 * stopped is marked failed with the reason, and its record rewritten.
 */
final class JobStore {
    static final String INTERRUPTED = "the server stopped while this job was %s; it did not finish";

    private final Path jobsDir;
    private final ObjectMapper json = new ObjectMapper();

    JobStore(Path stateDir) throws IOException {
        this.jobsDir = stateDir.resolve("jobs");
        Files.createDirectories(jobsDir);
        if (!Files.isWritable(jobsDir)) throw new IOException("--state: cannot write " + jobsDir);
    }

    Path dir(String id) {
        return jobsDir.resolve(id);
    }

    Path resultFile(String id) {
        return dir(id).resolve("result.json");
    }

    void save(Job job) throws IOException {
        Path d = dir(job.id());
        Files.createDirectories(d);
        byte[] bytes = json.writerWithDefaultPrettyPrinter().writeValueAsBytes(job.record());
        AtomicFiles.write(d.resolve("job.json"), out -> out.write(bytes));
    }

    void saveResult(String id, DiscoveryResult result) throws IOException {
        Files.createDirectories(dir(id));
        result.write(resultFile(id));
    }

    /** Removes a finished job's folder. */
    void delete(String id) throws IOException {
        Path d = dir(id);
        if (!Files.isDirectory(d)) return;
        try (Stream<Path> s = Files.walk(d)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }

    /**
     * Every job of the state folder, oldest first. A record that cannot be read is skipped with a warning on stderr
     * (the folder stays for inspection); one left queued or running is marked failed.
     */
    List<Job> restore() throws IOException {
        List<Job> jobs = new ArrayList<>();
        List<Path> dirs;
        try (Stream<Path> s = Files.list(jobsDir)) {
            dirs = s.filter(Files::isDirectory).toList();
        }
        for (Path d : dirs) {
            Path f = d.resolve("job.json");
            if (!Files.isRegularFile(f)) continue;
            Job job;
            try {
                JsonNode n = json.readTree(f.toFile());
                Job.State state = Job.State.valueOf(n.get("state").asText().toUpperCase(java.util.Locale.ROOT));
                String id = n.get("id").asText();
                if (!id.equals(d.getFileName().toString())) throw new IOException("id " + id + " in folder " + d);
                job = Job.restored(id, (ObjectNode) n.get("request"), Instant.parse(n.get("created_at").asText()), state,
                    instant(n, "started_at"), instant(n, "finished_at"), text(n, "error"));
                if (!state.isFinal()) {
                    job.finish(Job.State.FAILED, String.format(INTERRUPTED, state.json()));
                    save(job);
                } else if (state == Job.State.SUCCEEDED && !Files.isRegularFile(resultFile(id))) {
                    job = Job.restored(id, job.request(), Instant.parse(n.get("created_at").asText()), Job.State.FAILED,
                        instant(n, "started_at"), instant(n, "finished_at"), "its result file is missing");
                    save(job);
                }
            } catch (IOException | RuntimeException e) {
                System.err.println("autocircuit serve: skipping unreadable job record " + f + ": " + e.getMessage());
                continue;
            }
            jobs.add(job);
        }
        jobs.sort(Comparator.comparing(j -> (String) j.record().get("created_at")));
        return jobs;
    }

    private static Instant instant(JsonNode n, String f) {
        return n.hasNonNull(f) ? Instant.parse(n.get(f).asText()) : null;
    }

    private static String text(JsonNode n, String f) {
        return n.hasNonNull(f) ? n.get(f).asText() : null;
    }
}
