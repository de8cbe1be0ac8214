/**
 * CUDA as the memory module uses it, all through {@code latentmoe_cuda.h}: the device
 * ({@link dev.latentmoe.memory.cuda.Cuda}), streams, events, copies between host and device
 * tensors, and CUDA graphs. Device memory itself is an arena
 * ({@link dev.latentmoe.memory.DeviceArena}, {@link dev.latentmoe.memory.PinnedHostArena}).
 */
package dev.latentmoe.memory.cuda;
