package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.List;

/** The dataset generators, by key. */
public final class DatasetGenerators {

    private DatasetGenerators() {
    }

    /** Every generator, in listing order. */
    public static List<DatasetGenerator> all() {
        return List.of(new IoiGenerator(), new GreaterThanGenerator(), new DocstringGenerator());
    }

    /**
     * The generator with this key.
     *
     * @throws IllegalArgumentException listing the valid keys
     */
    public static DatasetGenerator byKey(String key) {
        List<String> keys = new ArrayList<>();
        for (DatasetGenerator g : all()) {
            if (g.key().equalsIgnoreCase(key == null ? "" : key.trim())) return g;
            keys.add(g.key());
        }
        throw new IllegalArgumentException("unknown dataset generator '" + key + "'; valid: " + keys);
    }
}
