/**
 * The data every layer shares: clean/corrupt {@link org.autocircuit.data.PromptPair}s, their tokenized
 * {@link org.autocircuit.data.PromptPairBatch}es and the {@link org.autocircuit.data.Answers} a metric reads.
 *
 * <p>It sits below {@code patching}, {@code metrics} and {@code algorithms}, which consume batches, and below
 * {@code tasks}, which makes them from dataset files and tokenizers; so none of those imports {@code tasks}, and
 * {@code tasks} imports nothing that patches. Wiring a task to a model ({@code discovery.LoadedTask}) happens above
 * all of them.
 */
package org.autocircuit.data;
