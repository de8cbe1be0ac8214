/**
 * Files: a safetensors writer in the reference layout, NumPy .npy, and the one JSON parser/writer
 * of the project. Every reader bounds its input and raises an
 * {@link java.lang.IllegalArgumentException} naming the file for anything malformed. Checkpoints
 * (config.json, safetensors headers, sharded indexes, quantization configs) are read by the native
 * loader of latentmoe_engine.h, through {@code dev.latentmoe.kernels.MoeLayer.fromCheckpoint}: the
 * one definition of their rules.
 */
package dev.latentmoe.memory.io;
