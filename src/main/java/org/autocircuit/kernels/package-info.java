/**
 * The performance-critical step of edge patching, behind one seam:
 * {@code out_m = input + Σ_i mask_m[.., i] · (patch[i] − curr[i])} for the destination modules that read the same
 * sources.
 *
 * <ul>
 *   <li>{@link org.autocircuit.kernels.Kernels}: the interface; {@link org.autocircuit.kernels.MaskLayout}: which
 *       optional dimensions a mask has.</li>
 *   <li>{@link org.autocircuit.kernels.TorchKernels}: the reference in plain libtorch ops, always available.</li>
 *   <li>{@link org.autocircuit.kernels.NativeKernels}: the fused C++ kernels (one pass over the source differences
 *       for all destinations, a libtorch autograd function), validated in Java before crossing;
 *       {@link org.autocircuit.kernels.NativeKernelsLib} is its JavaCPP binding and
 *       {@link org.autocircuit.kernels.KernelAvailability} says whether it loaded.</li>
 *   <li>{@link org.autocircuit.kernels.KernelSelection#best()}: native when available, else the reference;
 *       {@code -Dautocircuit.kernels=torch|native|auto}.</li>
 * </ul>
 *
 * <p>Memory: every method returning a {@code Tensor} creates it in the caller's current {@code PointerScope}, like a
 * libtorch op. Build, loading and troubleshooting: docs/native.md.
 */
package org.autocircuit.kernels;
