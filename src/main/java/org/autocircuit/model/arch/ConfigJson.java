package org.autocircuit.model.arch;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import org.autocircuit.model.ModelConfig;

/**
 * A parsed {@code config.json} whose accessors name the file and field in every error, so that adapters read as a
 * list of fields.
 */
public final class ConfigJson {
    private final Path file;
    private final JsonNode root;

    ConfigJson(Path file, JsonNode root) {
        this.file = file;
        this.root = root;
    }

    public Path file() {
        return file;
    }

    public JsonNode root() {
        return root;
    }

    public boolean has(String field) {
        return root.hasNonNull(field);
    }

    /** A required integer field. */
    public int integer(String field) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) throw error(field, "is missing (an integer is required)");
        if (!n.isIntegralNumber() || !n.canConvertToInt()) throw error(field, "must be an integer, got " + n);
        return n.asInt();
    }

    /** An optional integer field. */
    public int integer(String field, int orElse) {
        return has(field) ? integer(field) : orElse;
    }

    /** An optional number field. */
    public double number(String field, double orElse) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) return orElse;
        if (!n.isNumber()) throw error(field, "must be a number, got " + n);
        return n.asDouble();
    }

    /** An optional number field of an object field ({@code rope_parameters.rope_theta}). */
    public double number(JsonNode object, String objectField, String field, double orElse) {
        JsonNode n = object.get(field);
        if (n == null || n.isNull()) return orElse;
        if (!n.isNumber()) throw error(objectField + "." + field, "must be a number, got " + n);
        return n.asDouble();
    }

    public boolean bool(String field, boolean orElse) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) return orElse;
        if (!n.isBoolean()) throw error(field, "must be true or false, got " + n);
        return n.asBoolean();
    }

    public String text(String field, String orElse) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) return orElse;
        if (!n.isTextual()) throw error(field, "must be a string, got " + n);
        return n.asText();
    }

    public long id(String field, long orElse) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) return orElse;
        if (n.isArray() && n.size() > 0) n = n.get(0);   // some configs list several EOS ids
        if (!n.isIntegralNumber()) throw error(field, "must be a token id, got " + n);
        return n.asLong();
    }

    public ModelConfig.ActFn actFn(String field, String orElse) {
        return ModelConfig.ActFn.parse(text(field, orElse), file, field);
    }

    /** {@code a} divided by {@code b}, or an error naming both fields when it does not divide. */
    public int divide(String aField, int a, String bField, int b) {
        if (b <= 0 || a % b != 0) {
            throw new IllegalArgumentException(file + ": field '" + aField + "' (" + a + ") is not divisible by field '"
                + bField + "' (" + b + ")");
        }
        return a / b;
    }

    public IllegalArgumentException error(String field, String what) {
        return new IllegalArgumentException(file + ": field '" + field + "' " + what);
    }
}
