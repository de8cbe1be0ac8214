/**
 * The layer: the API engines use, the SPI backends implement, and the CUDA backend's public GPU
 * API. The CPU backend ({@code dev.latentmoe.kernels.cpu}) is not exported: it is reached through
 * {@code Backends.cpu()} and {@code Cpu}.
 */
module dev.latentmoe.kernels {
    requires transitive dev.latentmoe.memory;

    exports dev.latentmoe.kernels;
    exports dev.latentmoe.kernels.spi;
    exports dev.latentmoe.kernels.cuda;

    uses dev.latentmoe.kernels.spi.BackendProvider;
    provides dev.latentmoe.kernels.spi.BackendProvider
            with dev.latentmoe.kernels.cpu.CpuBackendProvider, dev.latentmoe.kernels.cuda.CudaBackendProvider;
}
