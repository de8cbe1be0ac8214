/**
 * The native CPU backend over {@code liblatentmoe.so}: weights used in place (no copy), a pool of
 * workspaces so that concurrent callers share no scratch and a warm call allocates nothing. Not
 * exported: engines reach it through {@code Backends.cpu()} and {@code Cpu}.
 */
package dev.latentmoe.kernels.cpu;
