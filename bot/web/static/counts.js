/*
 * conversation-engine counts: fills every element with a data-conversation-count attribute (its
 * value: the post's URL) with "12 comments · 👍 9 ❤️ 4", in one request per 50 posts.
 *
 *   <span data-conversation-count="https://blog.example.com/2026/10/hello/"></span>
 *   <script src="https://comments.example.com/counts.js" async></script>
 *
 * Text only (textContent): nothing from the server becomes markup.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var apiOrigin = new URL(script.src, document.baseURI).origin;
  var BATCH = 50;

  function label(count, reactions) {
    var text = count + (count === 1 ? " comment" : " comments");
    if (reactions && Number(reactions.total) > 0 && reactions.top) {
      text += " \u00b7 " + reactions.top.map(function (reaction) {
        return reaction.emoji + " " + reaction.count;
      }).join(" ");
    }
    return text;
  }

  function fill(elements) {
    var byUrl = {};
    elements.forEach(function (element) {
      var url = element.getAttribute("data-conversation-count");
      if (url) { (byUrl[url] = byUrl[url] || []).push(element); }
    });
    var urls = Object.keys(byUrl);
    for (var start = 0; start < urls.length; start += BATCH) {
      request(urls.slice(start, start + BATCH), byUrl);
    }
  }

  function request(urls, byUrl) {
    var query = urls.map(function (url) { return "url=" + encodeURIComponent(url); }).join("&");
    fetch(apiOrigin + "/api/v1/counts?" + query, { credentials: "omit", mode: "cors" }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (data) {
      urls.forEach(function (url) {
        var count = Number((data.counts || {})[url]) || 0;
        var text = label(count, (data.reactions || {})[url]);
        byUrl[url].forEach(function (element) {
          element.textContent = text;
          element.setAttribute("data-state", "loaded");
        });
      });
    }).catch(function () {
      urls.forEach(function (url) {
        byUrl[url].forEach(function (element) { element.setAttribute("data-state", "error"); });
      });
    });
  }

  function start() {
    fill(Array.prototype.slice.call(document.querySelectorAll("[data-conversation-count]")));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
