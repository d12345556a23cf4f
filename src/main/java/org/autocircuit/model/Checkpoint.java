package org.autocircuit.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The weights of a Hugging Face model folder: {@code model.safetensors}, or the shards that
 * {@code model.safetensors.index.json} lists ({@code weight_map: tensor name → shard file}).
 *
 * <p>Every shard is opened and its header validated up front, so a missing shard or a tensor the index places in a
 * shard that lacks it fails before any weight is read. Tensors are read one at a time from the memory-mapped shard
 * and converted to float32 ({@link SafeTensors#load}): the checkpoint's bytes stay in the page cache, never in a
 * second full copy in memory. Closing closes every shard; tensors already loaded stay valid.
 */
public final class Checkpoint implements WeightSource, AutoCloseable {
    /** The single-file checkpoint name. */
    public static final String SINGLE_FILE = "model.safetensors";
    /** The index of a sharded checkpoint. */
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path configJson;
    private final Map<String, SafeTensors> shardByTensor;
    private final Map<Path, SafeTensors> shards;

    private Checkpoint(Path configJson, Map<String, SafeTensors> shardByTensor, Map<Path, SafeTensors> shards) {
        this.configJson = configJson;
        this.shardByTensor = shardByTensor;
        this.shards = shards;
    }

    /**
     * Opens the checkpoint of {@code folder}: the sharded one when {@code model.safetensors.index.json} exists, else
     * {@code model.safetensors}.
     *
     * @throws IllegalArgumentException naming the file (and field or tensor) when a file is missing or invalid
     */
    public static Checkpoint open(Path folder) throws IOException {
        Path index = folder.resolve(INDEX_FILE);
        Path config = folder.resolve("config.json");
        Map<Path, SafeTensors> shards = new LinkedHashMap<>();
        Map<String, SafeTensors> byTensor = new TreeMap<>();
        try {
            if (Files.isRegularFile(index)) {
                JsonNode root;
                try {
                    root = new ObjectMapper().readTree(Files.readString(index));
                } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                    throw new IllegalArgumentException(index + ": not valid JSON: " + e.getOriginalMessage(), e);
                }
                JsonNode map = root == null ? null : root.get("weight_map");
                if (map == null || !map.isObject() || map.isEmpty()) {
                    throw new IllegalArgumentException(index + ": field 'weight_map' must be a non-empty object of "
                        + "tensor name → shard file");
                }
                for (var it = map.fields(); it.hasNext(); ) {
                    var e = it.next();
                    String file = e.getValue().asText("");
                    Path shard = folder.resolve(file).normalize();
                    if (file.isEmpty() || !shard.startsWith(folder.normalize())) {
                        throw new IllegalArgumentException(index + ": field 'weight_map' gives tensor \"" + e.getKey()
                            + "\" the shard '" + file + "', which is not a file in " + folder);
                    }
                    SafeTensors st = shards.get(shard);
                    if (st == null) {
                        if (!Files.isRegularFile(shard)) {
                            throw new IllegalArgumentException(index + ": field 'weight_map' names shard '" + file
                                + "' (for tensor \"" + e.getKey() + "\"), which does not exist in " + folder);
                        }
                        st = SafeTensors.open(shard);
                        shards.put(shard, st);
                    }
                    if (!st.names().contains(e.getKey())) {
                        throw new IllegalArgumentException(shard + ": lacks tensor \"" + e.getKey() + "\", which " + index
                            + " (field 'weight_map') places there");
                    }
                    byTensor.put(e.getKey(), st);
                }
            } else {
                Path single = folder.resolve(SINGLE_FILE);
                if (!Files.isRegularFile(single)) {
                    throw new IllegalArgumentException("model folder " + folder + " lacks " + SINGLE_FILE + " (or "
                        + INDEX_FILE + " for a sharded checkpoint)");
                }
                SafeTensors st = SafeTensors.open(single);
                shards.put(single, st);
                for (String name : st.names()) byTensor.put(name, st);
            }
        } catch (IOException | RuntimeException e) {
            for (SafeTensors st : shards.values()) st.close();
            throw e;
        }
        return new Checkpoint(config, byTensor, shards);
    }

    /** Every tensor name of the checkpoint, sorted. */
    public java.util.Set<String> names() {
        return java.util.Collections.unmodifiableSet(shardByTensor.keySet());
    }

    /** Number of shard files (1 for a single-file checkpoint). */
    public int shardCount() {
        return shards.size();
    }

    @Override
    public boolean has(String name) {
        return shardByTensor.containsKey(name);
    }

    @Override
    public Tensor loadIfPresent(String name, long... shape) {
        return has(name) ? load(name, shape) : null;
    }

    /**
     * Tensor {@code name} as float32, checked against the shape config.json implies.
     *
     * @throws IllegalArgumentException naming the shard file and tensor when it is missing, or when its shape
     *                                  disagrees with config.json
     */
    @Override
    public Tensor load(String name, long... shape) {
        return load(name, shape, torch.ScalarType.Float);
    }

    /** {@link #load(String, long...)}, in {@code stored} where the tensor is stored so, else float32. */
    private Tensor load(String name, long[] shape, torch.ScalarType stored) {
        SafeTensors st = shardByTensor.get(name);
        if (st == null) {
            throw new IllegalArgumentException((shards.size() == 1 ? shards.keySet().iterator().next().toString()
                : INDEX_FILE) + ": no tensor \"" + name + "\", which the architecture in " + configJson + " needs");
        }
        long[] actual = st.info(name).shape();
        if (!Arrays.equals(actual, shape)) {
            throw new IllegalArgumentException(st.file() + ": tensor \"" + name + "\" has shape "
                + Arrays.toString(actual) + ", but " + configJson + " implies " + Arrays.toString(shape));
        }
        return st.loadKeeping(name, stored);
    }

    /**
     * Tensor {@code name} in {@code dtype} where it is stored in that dtype (a BF16 tensor for a bfloat16 model is read
     * straight into bfloat16, with no float32 copy), else as float32 ({@link #load(String, long...)}); checked as
     * that is.
     */
    @Override
    public Tensor loadFor(torch.ScalarType dtype, String name, long... shape) {
        return load(name, shape, dtype);
    }

    @Override
    public void close() {
        for (SafeTensors st : shards.values()) st.close();
    }
}
