// The console's charts (Apache ECharts, served from /static/vendor) and the progress of background replays.
"use strict";

function data(element) {
  return JSON.parse(element.querySelector('script[type="application/json"]').textContent);
}

const number = (v) => (v === null || v === undefined ? null : Number(v));
const yuan = (v) => "¥" + Number(v).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const charts = {
  accumulators(element, d) {
    const zh = element.dataset.lang === "zh";
    return {
      tooltip: { trigger: "axis", valueFormatter: yuan },
      grid: { left: 210, right: 30, top: 20, bottom: 30 },
      xAxis: { type: "value" },
      yAxis: { type: "category", data: zh ? d.labels_zh : d.labels, inverse: true, axisLabel: { width: 200, overflow: "truncate" } },
      series: [
        { type: "bar", stack: "a", data: d.used.map(number), itemStyle: { color: "#1f5b80" } },
        { type: "bar", stack: "a", data: d.remaining.map(number), itemStyle: { color: "#6fb38f" } },
      ],
    };
  },
  balance(element, d) {
    return {
      tooltip: { trigger: "axis", valueFormatter: yuan },
      grid: { left: 70, right: 30, top: 20, bottom: 30 },
      xAxis: { type: "category", data: d.balance_days },
      yAxis: { type: "value" },
      series: [{ type: "line", step: "end", data: d.balance.map(number), symbolSize: 7 }],
    };
  },
  fund(element, d) {
    return {
      tooltip: { trigger: "axis", valueFormatter: yuan },
      legend: { data: [element.dataset.general, element.dataset.chronic] },
      grid: { left: 80, right: 30, top: 40, bottom: 30 },
      xAxis: { type: "category", data: d.months },
      yAxis: { type: "value" },
      series: [
        { name: element.dataset.general, type: "bar", stack: "f", data: d.general.map(number) },
        { name: element.dataset.chronic, type: "bar", stack: "f", data: d.chronic.map(number) },
      ],
    };
  },
  impact(element, d) {
    return {
      tooltip: { trigger: "axis", valueFormatter: yuan },
      legend: { data: [element.dataset.before, element.dataset.after] },
      grid: { left: 80, right: 30, top: 40, bottom: 90 },
      xAxis: { type: "category", data: d.labels, axisLabel: { rotate: 40 } },
      yAxis: { type: "value" },
      series: [
        { name: element.dataset.before, type: "bar", data: d.before.map(number) },
        { name: element.dataset.after, type: "bar", data: d.after.map(number) },
      ],
    };
  },
};

function drawCharts() {
  for (const element of document.querySelectorAll("[data-chart]")) {
    const draw = charts[element.dataset.chart];
    if (!draw || typeof echarts === "undefined") continue;
    const chart = echarts.init(element, null, { renderer: "svg" });
    chart.setOption({ animation: false, ...draw(element, data(element)) });
    element.dataset.drawn = "true";
  }
}

function followProgress() {
  const box = document.querySelector(".progress[data-job]");
  if (!box) return;
  const bar = box.querySelector("progress");
  const percent = box.querySelector(".percent");
  const poll = async () => {
    const answer = await fetch("/jobs/" + box.dataset.job, { credentials: "same-origin" });
    if (!answer.ok) return;
    const state = await answer.json();
    bar.value = state.percent;
    percent.textContent = state.percent + "%";
    if (state.finished) {
      window.location.reload();
      return;
    }
    setTimeout(poll, 500);
  };
  setTimeout(poll, 300);
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  followProgress();
});
