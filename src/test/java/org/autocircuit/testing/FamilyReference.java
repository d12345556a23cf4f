package org.autocircuit.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * Checks a model folder of fixtures/families/ against the Hugging Face logits that
 * src/test/scripts/make_family_fixtures.py recorded with it ({@code reference_logits*.json}).
 */
public final class FamilyReference {
    /** Logits agree with Hugging Face's float32 eager forward to this (the GPT-2 golden tests use the same). */
    public static final double TOLERANCE = 1e-4;

    private static final ObjectMapper JSON = new ObjectMapper();

    private FamilyReference() {}

    /**
     * Loads {@code fixtures/families/<family>/<folder>} and compares its forward pass with {@code reference}, a file
     * of {@code fixtures/families/<family>/}.
     */
    public static void check(String family, String folder, String reference) throws IOException {
        Path dir = Fixtures.resource("families/" + family + "/" + folder);
        JsonNode ref = JSON.readTree(Fixtures.resource("families/" + family + "/" + reference).toFile());
        try (HookedTransformer model = load(dir)) {
            assertMatches(model, ref, dir);
        }
    }

    /**
     * As {@link #check}, for a folder whose {@code sliding_window} is shorter than the prompts: asserts that it is (so
     * the reference really exercises the window) before comparing.
     */
    public static void checkSlidingWindow(String family, String folder, String reference) throws IOException {
        Path dir = Fixtures.resource("families/" + family + "/" + folder);
        JsonNode ref = JSON.readTree(Fixtures.resource("families/" + family + "/" + reference).toFile());
        int window = JSON.readTree(dir.resolve("config.json").toFile()).path("sliding_window").asInt(0);
        int seq = ref.path("prompts").get(0).path("ids").size();
        assertTrue(window > 0 && window < seq, dir + ": expected a sliding window shorter than the " + seq + "-token prompts");
        try (HookedTransformer model = load(dir)) {
            assertEquals(window, model.config().extras().slidingWindow(), dir + ": the loaded model's window");
            assertMatches(model, ref, dir);
        }
    }

    /**
     * Left-padded prompts ({@code reference_logits_padded.json}, written by
     * src/test/scripts/padded_window_reference.py): 8 prompts of 7 to 15 real tokens padded on the left to 15, run with
     * their attention mask; every prompt's full last-position logits within {@link #TOLERANCE} of Hugging Face's.
     */
    public static void checkPadded(String family, String folder, String reference) throws IOException {
        Path dir = Fixtures.resource("families/" + family + "/" + folder);
        JsonNode ref = JSON.readTree(Fixtures.resource("families/" + family + "/" + reference).toFile());
        JsonNode ids = ref.path("ids"), mask = ref.path("attention_mask"), last = ref.path("last_logits");
        int n = ids.size(), seq = ids.get(0).size(), vocab = last.get(0).size();
        long[] flatIds = new long[n * seq], flatMask = new long[n * seq];
        boolean padded = false;
        for (int i = 0; i < n; i++) {
            for (int t = 0; t < seq; t++) {
                flatIds[i * seq + t] = ids.get(i).get(t).asLong();
                flatMask[i * seq + t] = mask.get(i).get(t).asLong();
                padded |= flatMask[i * seq + t] == 0;
            }
        }
        assertTrue(padded, dir + ": the padded reference pads some prompt");
        try (HookedTransformer model = load(dir); PointerScope scope = new PointerScope()) {
            Tensor logits = model.forward(HostTensor.ofLongs(flatIds, n, seq).toTensor(),
                HostTensor.ofLongs(flatMask, n, seq).toTensor(), HookPoints.NONE, OutputSlice.LAST_SEQ);
            assertEquals(vocab, logits.size(1), dir + ": vocabulary size");
            float[] ours = HostTensor.of(logits).floats();
            for (int i = 0; i < n; i++) {
                double worst = 0;
                for (int v = 0; v < vocab; v++) {
                    worst = Math.max(worst, Math.abs(last.get(i).get(v).asDouble() - ours[i * vocab + v]));
                }
                assertTrue(worst <= TOLERANCE, dir.getFileName() + " padded prompt " + i + ": last-position logits differ by "
                    + worst);
            }
        }
    }

    private static HookedTransformer load(Path folder) throws IOException {
        return HookedTransformer.fromPretrained(folder);
    }

    private static void assertMatches(HookedTransformer model, JsonNode ref, Path dir) {
        JsonNode prompts = ref.path("prompts");
        int n = prompts.size();
        int seq = prompts.get(0).path("ids").size();
        long[] flat = new long[n * seq];
        for (int i = 0; i < n; i++) {
            JsonNode ids = prompts.get(i).path("ids");
            assertEquals(seq, ids.size(), "the reference prompts all have one length");
            for (int t = 0; t < seq; t++) flat[i * seq + t] = ids.get(t).asLong();
        }
        try (PointerScope scope = new PointerScope()) {
            Tensor logits = model.forward(HostTensor.ofLongs(flat, n, seq).toTensor(), null, HookPoints.NONE, OutputSlice.ALL);
            long[] shape = logits.shape();
            int vocab = ref.path("full_logits").get(0).path("logits").get(0).size();
            assertEquals(3, shape.length, dir + ": logits [batch, seq, vocab]");
            assertEquals(n, shape[0]);
            assertEquals(seq, shape[1]);
            assertEquals(vocab, shape[2], dir + ": vocabulary size");
            float[] all = HostTensor.of(logits).floats();
            for (int i = 0; i < n; i++) {
                JsonNode p = prompts.get(i);
                int base = (i * seq + seq - 1) * vocab;
                String at = dir.getFileName() + " prompt " + i;
                assertEquals(p.path("answer_logit").asDouble(), all[base + p.path("answer_id").asInt()], TOLERANCE, at + " answer logit");
                assertEquals(p.path("wrong_answer_logit").asDouble(), all[base + p.path("wrong_answer_id").asInt()], TOLERANCE,
                    at + " wrong-answer logit");
                double max = Double.NEGATIVE_INFINITY;
                int argmax = -1;
                for (int v = 0; v < vocab; v++) {
                    if (all[base + v] > max) {
                        max = all[base + v];
                        argmax = v;
                    }
                }
                double sum = 0;
                for (int v = 0; v < vocab; v++) sum += Math.exp(all[base + v] - max);
                assertEquals(p.path("logsumexp").asDouble(), max + Math.log(sum), TOLERANCE, at + " logsumexp");
                int refArgmax = p.path("argmax").asInt();
                // a near-tie may flip within the tolerance; otherwise the top token must agree
                assertTrue(argmax == refArgmax || Math.abs(all[base + refArgmax] - max) <= TOLERANCE,
                    at + ": argmax " + argmax + ", reference " + refArgmax);
            }
            for (JsonNode full : ref.path("full_logits")) {
                int i = full.path("index").asInt();
                double worst = 0;
                for (int t = 0; t < seq; t++) {
                    JsonNode row = full.path("logits").get(t);
                    for (int v = 0; v < vocab; v++) {
                        worst = Math.max(worst, Math.abs(row.get(v).asDouble() - all[(i * seq + t) * vocab + v]));
                    }
                }
                assertTrue(worst <= TOLERANCE, dir.getFileName() + " prompt " + i + ": full logits differ by " + worst);
            }
        }
    }
}
