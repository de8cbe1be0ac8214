/**
 * The layer as engines use it: {@link dev.latentmoe.kernels.MoeConfig} (shape and options),
 * {@link dev.latentmoe.kernels.MoeWeights} (the weight tensors, validated once),
 * {@link dev.latentmoe.kernels.MoeLayer} (weights bound to a backend; {@code forward}),
 * {@link dev.latentmoe.kernels.LayerKernels} (the four steps of a forward pass, each callable on
 * its own), {@link dev.latentmoe.kernels.Routing}, the backends
 * ({@link dev.latentmoe.kernels.Backends}, {@link dev.latentmoe.kernels.Cpu} for the CPU one's
 * settings), checkpoints ({@link dev.latentmoe.kernels.CheckpointWeights}) and Arrow vectors
 * ({@link dev.latentmoe.kernels.ArrowLayer}). Backends implement {@code kernels.spi}; the CPU one
 * lives in {@code kernels.cpu} (not exported), the CUDA one in {@code kernels.cuda}.
 */
package dev.latentmoe.kernels;
