/**
 * What a backend implements and reuses: {@link dev.latentmoe.kernels.spi.BackendProvider} (found
 * through {@link java.util.ServiceLoader}), {@link dev.latentmoe.kernels.spi.CheckedLayerKernels}
 * (the base class running the argument checks before the backend's {@code run*} methods),
 * {@link dev.latentmoe.kernels.spi.LayerChecks} (those checks, for any other entry point),
 * {@link dev.latentmoe.kernels.spi.NativeConfig} (the ABI's {@code lmoe_config}) and
 * {@link dev.latentmoe.kernels.spi.UnavailableBackend}.
 */
package dev.latentmoe.kernels.spi;
