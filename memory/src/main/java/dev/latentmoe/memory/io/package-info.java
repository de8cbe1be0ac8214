/**
 * Files: safetensors (memory-mapped, zero-copy tensors; and a writer in the reference layout),
 * Hugging Face checkpoint directories (config.json, single file or sharded index), NumPy .npy, and
 * the one JSON parser/writer of the project. Every reader bounds its input and raises an
 * {@link java.lang.IllegalArgumentException} naming the file for anything malformed.
 */
package dev.latentmoe.memory.io;
