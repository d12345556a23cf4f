package org.autocircuit.report;

import org.autocircuit.util.AtomicFiles;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.exc.ValueInstantiationException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/** The JSON form of {@link DiscoveryResult} (docs/schema/discover-result.schema.json). */
final class ResultJson {
    private ResultJson() {}

    /**
     * Strict on purpose: unknown or missing fields are errors, so a misspelt field in a hand-edited file is reported
     * instead of silently ignored. Non-finite numbers travel as "NaN" / "Infinity" / "-Infinity" strings.
     */
    static final ObjectMapper MAPPER = JsonMapper.builder()
        .enable(SerializationFeature.INDENT_OUTPUT)
        .enable(JsonWriteFeature.WRITE_NAN_AS_STRINGS)
        .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
        .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
        .enable(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES)
        .disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET)
        .build();

    static void write(DiscoveryResult result, Path file) throws IOException {
        AtomicFiles.write(file, out -> MAPPER.writeValue(out, result));
    }

    static String toJson(DiscoveryResult result) {
        try {
            return MAPPER.writeValueAsString(result);
        } catch (IOException e) {
            throw new IllegalStateException("cannot serialise the discovery result", e);
        }
    }

    /**
     * @throws IllegalArgumentException naming the file, the place in it and what is wrong, for malformed JSON or
     *                                  values that break the result's rules
     * @throws java.nio.file.NoSuchFileException if the file does not exist
     */
    static DiscoveryResult read(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return MAPPER.readValue(in, DiscoveryResult.class);
        } catch (ValueInstantiationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new IllegalArgumentException("discovery result " + file + " is invalid: " + cause.getMessage()
                + " (at " + e.getPathReference() + ")", e);
        } catch (JacksonException e) {
            throw new IllegalArgumentException("discovery result " + file + " is not valid result JSON: "
                + e.getOriginalMessage() + " (at " + location(e) + ")", e);
        }
    }

    private static String location(JacksonException e) {
        var loc = e.getLocation();
        String where = loc == null ? "" : "line " + loc.getLineNr() + ", column " + loc.getColumnNr();
        if (e instanceof com.fasterxml.jackson.databind.JsonMappingException m && !m.getPath().isEmpty()) {
            where += (where.isEmpty() ? "" : ", ") + "field " + m.getPathReference();
        }
        return where.isEmpty() ? "unknown place" : where;
    }
}
