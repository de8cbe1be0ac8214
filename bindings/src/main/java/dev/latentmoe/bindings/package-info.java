/**
 * The C headers of {@code native/include} as Java classes in jextract's shape, written by hand:
 * {@code latentmoe_h} (CPU kernels), {@code latentmoe_cuda_h} (CUDA backend),
 * {@code latentmoe_engine_h} (engine ABI), and the struct classes {@code lmoe_config},
 * {@code lmoe_weights}, {@code lmoe_cuda_weights}. Per C function a {@code public static final
 * MethodHandle <name>$MH} and a static wrapper of the C name; per enum value and integer macro a
 * constant; per struct a class with {@code layout()}, accessors and {@code sizeof()}. Nothing else
 * lives here: loading, binding and error translation are in {@link dev.latentmoe.bindings.runtime}.
 * {@code LatentmoeHeaderDriftTest} compares every class with its header through clang, so a header
 * change and its class change go together: layouts, and what a layout cannot show, the wrappers'
 * parameter names (the module is compiled with {@code -parameters}) where the header names them and
 * the signedness of every integer ({@link dev.latentmoe.bindings.runtime.Unsigned} on a wrapper
 * parameter, a wrapper's return or a struct getter, for {@code uintN_t}). Its self-check drifts the
 * real dump (an extra parameter, two same-type parameters swapped, a parameter's and a field's
 * signedness changed, a struct field removed) and fails unless each is caught.
 */
package dev.latentmoe.bindings;
