// Draws the plots of an autocircuit HTML report from the JSON in #report-data (see HtmlReport.java).
// Every string that reaches Plotly goes through plotlyText: Plotly reads a subset of HTML (<b>, <br>, <a href>,
// entities) in labels, so a token such as "<b>" must arrive as "&lt;b&gt;" to be shown literally.
(function () {
  'use strict';

  var COLOR_PALETTE = ['#636EFA', '#EF553B', '#00CC96', '#AB63FA', '#FFA15A', '#19D3F3', '#FF6692', '#B6E880',
    '#FF97FF', '#FECB52'];
  var POSITIVE = 'rgba(0,0,255,0.3)';
  var NEGATIVE = 'rgba(255,0,0,0.3)';
  var ZERO = 'rgba(0,0,0,0.1)';
  var PLOT_CONFIG = {displaylogo: false, responsive: true};

  function plotlyText(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }

  function showError(message) {
    var box = document.getElementById('report-errors');
    var p = document.createElement('p');
    p.textContent = message;   // textContent: never parsed as HTML
    box.appendChild(p);
    box.hidden = false;
    document.body.setAttribute('data-render-error', 'true');
  }

  window.addEventListener('error', function (e) { showError('Error while drawing the report: ' + e.message); });

  // JSON has no NaN/Infinity; the result file writes them as strings.
  function num(v) {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    return v;
  }

  function fmt(v) {
    v = num(v);
    if (!isFinite(v)) return String(v);
    var a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, '');
  }

  // ---- circuit Sankey: nodes by layer (x) and, in token graphs, one diagram per position (y) ----

  // As AutoCircuit's draw_seq_graph: the embedding and the output get short names, and a head's Q/K/V inputs
  // are drawn as the head itself, so one Sankey node stands for the head.
  function displayName(name) {
    if (name === 'Resid Start') return 'Embed';
    if (name === 'Resid End') return 'Unembed';
    return name.replace(/\.[QKV]$/, '');
  }

  function edgeValue(score, finiteMax) {
    var s = Math.abs(num(score));
    return isFinite(s) ? s : 2 * finiteMax;   // an infinite score is drawn as the widest edge, not as infinity
  }

  function sankeyTrace(edges, layers, maxLayer, domainY, finiteMax) {
    var nodeIndex = {};
    var nodes = [];
    function node(rawName) {
      var label = displayName(rawName);
      if (!(label in nodeIndex)) {
        nodeIndex[label] = nodes.length;
        var layer = layers[label];
        nodes.push({label: label, layer: layer === undefined ? 0 : layer});
      }
      return nodeIndex[label];
    }
    var link = {source: [], target: [], value: [], color: [], label: [], customdata: []};
    edges.forEach(function (e) {
      link.source.push(node(e.src));
      link.target.push(node(e.dest));
      link.value.push(edgeValue(e.score, finiteMax));
      var s = num(e.score);
      link.color.push(s > 0 ? POSITIVE : (s < 0 ? NEGATIVE : ZERO));
      link.customdata.push(plotlyText(e.src + '->' + e.dest + (e.seqIdx === null ? '' : ' @' + e.seqIdx)
        + ': ' + fmt(e.score)));
    });
    // Column per layer, nodes of a column spread evenly; Plotly wants x and y strictly inside (0, 1).
    var byLayer = {};
    nodes.forEach(function (n, i) { (byLayer[n.layer] = byLayer[n.layer] || []).push(i); });
    var x = new Array(nodes.length), y = new Array(nodes.length);
    Object.keys(byLayer).forEach(function (layer) {
      var members = byLayer[layer];
      members.forEach(function (i, j) {
        x[i] = 0.01 + 0.98 * (maxLayer === 0 ? 0.5 : Number(layer) / maxLayer);
        y[i] = (j + 1) / (members.length + 1);
      });
    });
    return {
      type: 'sankey',
      arrangement: 'snap',
      orientation: 'h',
      domain: {x: [0, 1], y: domainY},
      node: {
        label: nodes.map(function (n) { return plotlyText(n.label); }),
        color: nodes.map(function (n, i) { return COLOR_PALETTE[i % COLOR_PALETTE.length]; }),
        x: x, y: y, pad: 12, thickness: 14
      },
      link: {source: link.source, target: link.target, value: link.value, color: link.color,
        customdata: link.customdata, hovertemplate: '%{customdata}<extra></extra>'}
    };
  }

  function drawSankey(div, algorithm, data) {
    var edges = algorithm.circuitEdges;
    if (edges.length === 0) {
      div.textContent = 'No edge with a non-zero score to draw.';
      return Promise.resolve();
    }
    var layers = data.displayLayers;
    var finiteMax = 0;
    edges.forEach(function (e) { var s = Math.abs(num(e.score)); if (isFinite(s)) finiteMax = Math.max(finiteMax, s); });
    if (finiteMax === 0) finiteMax = 1;
    var traces = [], annotations = [];
    if (data.seqLen === null) {
      traces.push(sankeyTrace(edges, layers, data.maxLayer, [0, 1], finiteMax));
    } else {
      // One diagram per token position that has drawn edges, its height proportional to the total |score| there
      // (draw_seq_graph), with a floor so that a small position stays legible.
      var byPos = {};
      edges.forEach(function (e) { (byPos[e.seqIdx] = byPos[e.seqIdx] || []).push(e); });
      var positions = Object.keys(byPos).map(Number).sort(function (a, b) { return a - b; });
      var weight = positions.map(function (p) {
        return byPos[p].reduce(function (acc, e) { return acc + edgeValue(e.score, finiteMax); }, 0);
      });
      var maxWeight = Math.max.apply(null, weight);
      weight = weight.map(function (w) { return Math.max(w, 0.15 * maxWeight); });
      var total = weight.reduce(function (a, b) { return a + b; }, 0);
      var gap = positions.length > 1 ? 0.02 : 0;
      var usable = 1 - gap * (positions.length - 1);
      var top = 1;
      positions.forEach(function (p, i) {
        var h = usable * weight[i] / total;
        var domain = [Math.max(0, top - h), top];
        traces.push(sankeyTrace(byPos[p], layers, data.maxLayer, domain, finiteMax));
        var label = data.seqLabels.length > p ? data.seqLabels[p] : '';
        if (label.length > 24) label = label.substring(0, 23) + '…';   // the margin holds short tokens
        annotations.push({xref: 'paper', yref: 'paper', x: -0.01, xanchor: 'right', y: (domain[0] + domain[1]) / 2,
          yanchor: 'middle', showarrow: false, align: 'right',
          text: plotlyText('pos ' + p + (label === '' ? '' : ': ' + label))});
        top = domain[0] - gap;
      });
    }
    var height = Math.max(250 * traces.length, 400);
    var layout = {
      title: {text: plotlyText(algorithm.name + ': top ' + edges.length + ' edges by |score|')},
      height: height, margin: {l: data.seqLen === null ? 20 : 160, r: 20, t: 50, b: 20},
      annotations: annotations, font: {size: 11}
    };
    return Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
  }

  // ---- line charts ----

  function lineTrace(name, xs, ys, i, extra) {
    var t = {type: 'scatter', mode: xs.length === 1 ? 'markers' : 'lines+markers', name: plotlyText(name),
      x: xs, y: ys.map(num), line: {color: COLOR_PALETTE[i % COLOR_PALETTE.length]},
      marker: {color: COLOR_PALETTE[i % COLOR_PALETTE.length], size: 6}};
    for (var k in extra) t[k] = extra[k];
    return t;
  }

  function drawCurves(container, data) {
    var metricKeys = [];
    var metricNames = {};
    var logX = {};
    data.algorithms.forEach(function (a) {
      a.curves.forEach(function (c) {
        if (metricKeys.indexOf(c.key) < 0) { metricKeys.push(c.key); metricNames[c.key] = c.name; logX[c.key] = c.logX; }
      });
    });
    if (metricKeys.length === 0) {
      container.textContent = 'No metric curves in this result.';
      return [];
    }
    return metricKeys.map(function (key) {
      var div = document.createElement('div');
      div.className = 'plot curve-plot';
      container.appendChild(div);
      var traces = [];
      data.algorithms.forEach(function (a, i) {
        a.curves.forEach(function (c) {
          if (c.key !== key) return;
          // On a log axis 0 edges has no place: draw it at 0.5, as AutoCircuit's edge_patching_plot does.
          var xs = c.points.map(function (p) { return c.logX && p.edgeCount === 0 ? 0.5 : p.edgeCount; });
          var ys = c.points.map(function (p) { return p.value; });
          var label = a.name + (c.auc === null ? '' : ' (AUC ' + fmt(c.auc) + ')');
          traces.push(lineTrace(label, xs, ys, i, {}));
        });
      });
      var layout = {
        title: {text: plotlyText(metricNames[key] + (metricNames[key] === key ? '' : ' (' + key + ')'))},
        xaxis: {title: {text: 'Circuit edges'}, type: logX[key] ? 'log' : 'linear'},
        yaxis: {title: {text: plotlyText(metricNames[key])}},
        height: 420, margin: {t: 50}
      };
      return Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
    });
  }

  function drawFaithfulness(div, data) {
    var traces = [];
    var metric = null;
    data.algorithms.forEach(function (a, i) {
      var f = a.faithfulness;
      if (f === null) return;
      metric = f.metricKey;
      traces.push(lineTrace(a.name + ' (CPR ' + fmt(f.cpr) + ', CMD ' + fmt(f.cmd) + ')',
        f.points.map(function (p) { return p.fraction; }), f.points.map(function (p) { return p.faithfulness; }), i,
        {customdata: f.points.map(function (p) { return p.edgeCount; }),
          hovertemplate: 'k = %{x}, %{customdata} edges: f = %{y:.4g}'}));
    });
    if (traces.length === 0) {
      div.textContent = 'No faithfulness curve in this result.';
      return Promise.resolve();
    }
    traces.push({type: 'scatter', mode: 'lines', x: [0.001, 1], y: [1, 1], name: 'full model',
      line: {color: 'rgba(0,0,0,0.4)', dash: 'dot'}, hoverinfo: 'skip'});
    var layout = {
      title: {text: plotlyText('Faithfulness of ' + metric + ': (m(C) − m(∅)) / (m(N) − m(∅))')},
      xaxis: {title: {text: 'Fraction of edges in the circuit'}, type: 'log'},
      yaxis: {title: {text: 'Faithfulness'}}, height: 420, margin: {t: 50}
    };
    return Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
  }

  function drawRoc(div, data) {
    var traces = [];
    var circuit = null;
    data.algorithms.forEach(function (a, i) {
      if (a.roc === null) return;
      circuit = a.roc.officialCircuit + ' (' + a.roc.officialEdgeCount + ' edges)';
      traces.push(lineTrace(a.name + ' (AUC ' + fmt(a.roc.auc) + ')',
        a.roc.points.map(function (p) { return p.fpr; }), a.roc.points.map(function (p) { return p.tpr; }), i, {}));
    });
    if (traces.length === 0) {
      div.textContent = 'No official circuit for this task, so no ROC curve.';
      return Promise.resolve();
    }
    traces.push({type: 'scatter', mode: 'lines', x: [0, 1], y: [0, 1], name: 'chance',
      line: {color: 'rgba(0,0,0,0.3)', dash: 'dash'}, hoverinfo: 'skip'});
    var layout = {
      title: {text: plotlyText('ROC against ' + circuit)},
      xaxis: {title: {text: 'False Positive Rate'}, range: [-0.02, 1.02], constrain: 'domain'},
      yaxis: {title: {text: 'True Positive Rate'}, range: [-0.02, 1.02], scaleanchor: 'x'},
      height: 480, width: 560, margin: {t: 50}
    };
    return Plotly.newPlot(div, traces, layout, PLOT_CONFIG);
  }

  function main() {
    var data = JSON.parse(document.getElementById('report-data').textContent);
    var done = [];
    data.algorithms.forEach(function (a, i) {
      done.push(drawSankey(document.getElementById('sankey-' + i), a, data));
    });
    done = done.concat(drawCurves(document.getElementById('curves'), data));
    done.push(drawFaithfulness(document.getElementById('faithfulness'), data));
    done.push(drawRoc(document.getElementById('roc'), data));
    return Promise.all(done);
  }

  try {
    main().then(function () {
      document.body.setAttribute('data-rendered', 'true');
    }, function (err) {
      showError('Error while drawing the report: ' + err);
    });
  } catch (err) {
    showError('Error while drawing the report: ' + err);
  }
})();
