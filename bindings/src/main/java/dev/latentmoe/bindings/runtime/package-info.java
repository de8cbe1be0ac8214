/**
 * What the jextract-shaped header classes stand on: finding and loading our libraries
 * ({@link dev.latentmoe.bindings.runtime.NativeLibraries}), binding symbols or standing in for
 * missing ones ({@link dev.latentmoe.bindings.runtime.Library},
 * {@link dev.latentmoe.bindings.runtime.Downcalls}), native status codes as exceptions
 * ({@link dev.latentmoe.bindings.runtime.NativeErrors},
 * {@link dev.latentmoe.bindings.runtime.LatentMoeNativeException}), and every setting read from
 * the environment ({@link dev.latentmoe.bindings.runtime.Knob}). It depends on no header class.
 */
package dev.latentmoe.bindings.runtime;
