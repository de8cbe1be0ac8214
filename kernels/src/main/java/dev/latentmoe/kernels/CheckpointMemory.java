package dev.latentmoe.kernels;

/**
 * Where a checkpoint layer's weights live (the native loader's {@code lmoe_layer_memory}).
 *
 * @param weightBytes bytes the kernels read: every matrix's data and block scales and the
 *     correction bias ({@code inPlaceBytes + convertedBytes})
 * @param inPlaceBytes of those, used in place from the memory-mapped safetensors files
 * @param convertedBytes of those, in the loader's own memory (F16 matrices widened to F32, a
 *     non-F32 bias, tensors at an offset their element size does not divide)
 * @param mappedBytes size of the safetensors files the layer maps (they may hold other layers)
 */
public record CheckpointMemory(long weightBytes, long inPlaceBytes, long convertedBytes, long mappedBytes) {}
