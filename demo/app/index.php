<?php
// The demo application's front page.
header('Content-Type: text/html; charset=utf-8');
?><!doctype html>
<title>Bitville demo shop</title>
<h1>Bitville demo shop</h1>
<ul>
  <li><a href="/orders.php">/orders.php</a>: an N+1 pattern (1 + 10 queries)</li>
  <li><a href="/report.php">/report.php</a>: one slow query</li>
  <li><a href="/customer.php?id=3">/customer.php?id=3</a>: three different queries and some PHP time</li>
  <li><a href="/invoice.php">/invoice.php</a>: most of its time in PHP (demo_render_invoice, in the flame graph)</li>
  <li><a href="/fast.php">/fast.php</a>: fast, below the agent's threshold (not recorded)</li>
</ul>
