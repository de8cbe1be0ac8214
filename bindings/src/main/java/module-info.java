/**
 * The C headers as jextract-shaped classes (for this project's modules only) and the runtime they
 * stand on: library loading, downcalls, native errors as exceptions, the environment's knobs.
 * The native libraries themselves come from the classified jars of {@code latentmoe-native},
 * found as {@link dev.latentmoe.bindings.runtime.NativeLibraryBundle} services.
 */
module dev.latentmoe.bindings {
    exports dev.latentmoe.bindings to dev.latentmoe.memory, dev.latentmoe.kernels, dev.latentmoe.bench;
    exports dev.latentmoe.bindings.runtime;

    uses dev.latentmoe.bindings.runtime.NativeLibraryBundle;
}
