/**
 * Prompt datasets and tasks (AutoCircuit's {@code data.py} and {@code tasks.py}).
 *
 * <p>A dataset file is read by {@link org.autocircuit.tasks.Datasets#readFile} into a
 * {@link org.autocircuit.tasks.DatasetFile} of raw JSON {@link org.autocircuit.tasks.RawPromptPair}s.
 * {@link org.autocircuit.tasks.Datasets#load} is {@code load_datasets_from_json}: it
 * shuffles with CPython's generator ({@link org.autocircuit.tasks.PyRandom}), tokenizes with a
 * {@link org.autocircuit.tasks.Tokenizer} (GPT-2: {@link org.autocircuit.tasks.Gpt2Tokenizer}) or
 * takes the numbers as they are, and returns two immutable
 * {@link org.autocircuit.tasks.PromptDataLoader}s of {@link org.autocircuit.data.PromptPairBatch}es.
 * Everything here lives on the Java heap ({@link org.autocircuit.util.HostTensor}); nothing owns
 * native memory.
 */
package org.autocircuit.tasks;
