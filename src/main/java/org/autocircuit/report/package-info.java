/**
 * The outcome of a circuit-discovery run as data and as a page: {@link org.autocircuit.report.DiscoveryResult}
 * (immutable records; JSON read and write; schema in {@code docs/schema/discover-result.schema.json}), filled from
 * the library's graphs, prune scores and metric measurements by {@link org.autocircuit.report.DiscoveryResultBuilder},
 * and {@link org.autocircuit.report.HtmlReport}, a self-contained offline HTML report with a Sankey diagram of the
 * circuit, the metric and faithfulness curves, the ROC curve and the run's parameters. See docs/report.md.
 */
package org.autocircuit.report;
