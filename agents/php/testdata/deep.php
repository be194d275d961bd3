<?php
// A page whose profile is far bigger than a datagram (for the size tests): a chain of ?depth=
// functions with ?name= characters long names, each level working ?ms= milliseconds before
// descending, so every level is a distinct sampled stack about depth x name bytes long.
$depth = (int) ($_GET['depth'] ?? 40);
$name = (int) ($_GET['name'] ?? 200);
$ms = (int) ($_GET['ms'] ?? 4);
for ($i = $depth - 1; $i >= 0; $i--) {
    $fn = sprintf('level_%03d_', $i) . str_repeat('x', $name);
    $next = $i + 1 < $depth ? sprintf('level_%03d_', $i + 1) . str_repeat('x', $name) . '();' : '';
    eval("function $fn() { \$end = hrtime(true) + $ms * 1000000; while (hrtime(true) < \$end) {} $next }");
}
call_user_func(sprintf('level_%03d_', 0) . str_repeat('x', $name));
header('Content-Type: text/plain');
echo "deep page body\n";
