// Which page this is, from the shell's data-page; each page module draws into #app.

import { comparePage } from "./compare.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

// A path that does not decode (a stray "%") is looked up as written: the API says no such run.
function runId(segment) {
  try { return decodeURIComponent(segment); } catch { return segment; }
}

const app = document.getElementById("app");
const page = document.body.dataset.page;
if (page === "run") runPage(app, runId(location.pathname.split("/")[2] || ""));
else if (page === "compare") comparePage(app);
else runsPage(app);
